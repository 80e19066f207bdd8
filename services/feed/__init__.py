"""The feed service: hybrid fan-out on write / fan-in on read timelines in Redis."""
