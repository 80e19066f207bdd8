"""Product analytics: client events tracked, rolled up, and reported to admins."""
