"""Zentry's gRPC services (`python -m services.<name>`) and the kit they share (services.kit)."""
