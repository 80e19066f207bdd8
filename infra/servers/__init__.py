"""One module per real server; each subclasses infra.servers.base.Server."""
