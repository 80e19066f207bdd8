"""Which services make up Zentry, and which of them consume events or replay them."""

#: Every service (`python -m services.<name>`, owning database `zentry_<name>`), in start order.
SERVICES = ("user", "sleep", "feed", "leaderboard", "analytics")
#: The services with Kafka consumers, which can run apart from their API (ZENTRY_ROLE).
CONSUMING = ("sleep", "feed", "leaderboard", "analytics")
#: The services whose read models `python -m services.<name>.replay` rebuilds from Kafka.
REPLAYING = ("feed", "leaderboard", "analytics")
