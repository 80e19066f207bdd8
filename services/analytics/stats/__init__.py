"""Sleep statistics: each user's nights, kept from sleep and profile events, summarized."""
