"""The analytics service: two parts in one process and one database.

`stats`: each user's own sleep statistics and trends, kept from sleep and
profile events. `product`: product analytics, client events tracked by the
apps and counted into rollups that admins query.
"""
