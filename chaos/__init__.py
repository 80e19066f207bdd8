"""Exactly once, whatever fails: a fault-injection run of the whole mesh (`make chaos`).

`python -m chaos` starts the servers and a mesh of its own (two API instances
of every service, and two consumer instances of each service that consumes),
drives REST load through the gateway from several clients while faults
strike on a schedule, then audits every read model against what the API
acknowledged and prints what it found. See chaos/__main__.py for the knobs.

- `cluster.py`: the processes and servers, and how each fault is done to them;
- `load.py`: the clients, and the ledger of what was acknowledged or is ambiguous;
- `faults.py`: the schedule of faults for a run's length;
- `audit.py`: the expected read models and the comparison with what the API shows.
"""
