"""The REST gateway: Envoy's config generated from the protos, endpoints fed from Consul."""
