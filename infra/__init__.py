"""Zentry's development tooling: the local servers, the mesh on this machine, the manifests.

Never imported by services/ or gateway/, and not in the container image.

- `__main__`: `python -m infra {install,up,down,status,reset,dev,k8s,replay-*}`
  (the Makefile's `setup`, `infra-*`, `dev`, `k8s-validate` and `replay-*` run it);
- `config`: the settings of the local servers, built on the kit's addresses;
- `install`: the pinned tools under `.tools/` (pins in `toolchain/`);
- `servers/`: PostgreSQL, Redis, Apache Kafka (KRaft), Consul and Envoy, on
  loopback with their data and logs under `.run/`; `lifecycle` starts, checks and
  stops them; `processes` tracks what we started; `topics` declares the topics
  (`topics.toml`);
- `meshstatus`: `status --mesh` (`make status`): instances' health, consumer lag, outbox
  backlogs and parked events of the running mesh;
- `mesh`: service instances and the gateway's endpoint feed (`make dev`, bench, chaos, tests);
- `k8s`: renders and validates the Kubernetes manifests;
- `errors`: the one error the commands show.
"""
