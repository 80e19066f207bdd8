"""`python -m chaos` (`make chaos`): load and faults, then an audit of every read model.

Knobs (environment): CHAOS_PROFILE (`standard`: every fault against the local servers;
`redis-failover`: a Redis primary, replica and Sentinels of the run's own, whose
primary is killed under the load), CHAOS_SECONDS of load (60), CHAOS_SEED (1), CHAOS_CLIENTS (3),
CHAOS_ROUNDS of every fault (1; 2 from 300 s of load), CHAOS_MAX_REQUESTS per client
(4000), CHAOS_CONVERGE seconds the read models get to agree after the last fault and
write (120).
A reader reads the feed and a board throughout and the report counts its answers.
Everything runs on loopback and stops by itself; exit status 1 on any difference, an
instance that died by itself, an ambiguous write that never settled, or (in the
failover profile) a read that failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime

from chaos import faults
from chaos.audit import Auditor
from chaos.cluster import Cluster
from chaos.load import Client, Ledger, Reader, User, settle
from infra import config


def main() -> int:
    seconds = float(os.environ.get("CHAOS_SECONDS", "60"))
    seed = int(os.environ.get("CHAOS_SEED", "1"))
    clients = int(os.environ.get("CHAOS_CLIENTS", "3"))
    rounds = int(os.environ.get("CHAOS_ROUNDS", "2" if seconds >= 300 else "1"))
    max_requests = int(os.environ.get("CHAOS_MAX_REQUESTS", "4000"))
    converge = float(os.environ.get("CHAOS_CONVERGE", "120"))
    profile = os.environ.get("CHAOS_PROFILE", "standard")
    if profile not in faults.PROFILES:
        say(f"CHAOS_PROFILE must be one of {', '.join(faults.PROFILES)}; got {profile!r}")
        return 2
    settings = config.load()
    cluster = Cluster(settings, redis_ha=profile == "redis-failover")
    say(f"starting the mesh ({profile}, seed {seed}, {seconds:.0f} s of load, {clients} clients)")
    try:
        cluster.start()
        ledger = Ledger(run=uuid.uuid4().hex[:8])
        admin = make_admin(cluster, ledger)
        started = datetime.now(UTC)
        plan = faults.schedule(seconds, seed, rounds, profile)
        struck: list[tuple[float, str, str]] = []
        t0 = time.monotonic()
        threads = [
            threading.Thread(
                target=Client(cluster.base_url, ledger, n, seed * 100 + n).run,
                args=(t0 + seconds, max_requests),
                name=f"client-{n}",
            )
            for n in range(clients)
        ]
        reader = Reader(cluster.base_url, admin)
        threads.append(threading.Thread(target=reader.run, args=(t0 + seconds,), name="reader"))
        for thread in threads:
            thread.start()
        for at, fault in plan:
            time.sleep(max(0.0, t0 + at - time.monotonic()))
            began = time.monotonic() - t0
            what = fault.strike(cluster)
            struck.append((began, fault.name, what))
            say(f"{began:6.1f} s  {fault.name}: {what}")
        for thread in threads:
            thread.join()
        quiet = time.monotonic()  # the last fault is over and the load has stopped
        say(f"load done: {dict(sorted(ledger.counts.items()))}; settling ambiguous writes")
        settled = settle(ledger)
        auditor = Auditor(cluster.base_url, ledger, admin, started)
        while True:
            began = time.monotonic() - quiet
            findings = auditor.audit()
            agreed_after = began  # a pass that finds nothing saw it all agree when it began
            if not findings.differences() or time.monotonic() - quiet > converge:
                break
            say(f"{began:.0f} s after the last fault and write: {findings.summary()}")
            time.sleep(2)
        died = cluster.died()
    finally:
        cluster.stop()
    report(struck, ledger, settled, findings, agreed_after, died, reader)
    failed = findings.differences() or died or ledger.ambiguous
    # Redis failing over must not fail a read: the feed and boards answer from PostgreSQL.
    return 1 if failed or (profile == "redis-failover" and reader.failed) else 0


def make_admin(cluster: Cluster, ledger: Ledger) -> User:
    """An account with the admin role, to read product analytics."""
    client = Client(cluster.base_url, ledger, 99, 0)
    user = User(f"a{ledger.run}")
    body = {
        "username": user.username,
        "email": f"{user.username}@example.com",
        "password": "chaos-sleeps-well-42",
    }
    client.write("POST", "/v1/users", json=body)
    subprocess.run(
        [sys.executable, "-m", "services.user.roles", "grant", user.username, "admin"],
        cwd=cluster.settings.repo_dir,
        env=cluster.mesh.env(),
        check=True,
        capture_output=True,
    )
    session = client.write(
        "POST", "/v1/sessions", json={"username": user.username, "password": body["password"]}
    ).json()
    user.token, user.id = session["accessToken"], session["user"]["id"]
    return user


def report(
    struck, ledger: Ledger, settled: int, findings, agreed_after: float, died, reader: Reader
) -> None:
    print("\n## Faults\n\n| at | fault | what happened |\n|--:|---|---|")
    for at, name, what in struck:
        print(f"| {at:.1f} s | {name} | {what} |")
    print(f"\n## Writes\n\nacknowledged: {dict(sorted(ledger.counts.items()))}")
    print(
        f"ambiguous writes settled by retrying: {settled}; still ambiguous: {len(ledger.ambiguous)}"
    )
    print(
        f"users {len(ledger.users)}, nights {sum(n.live for n in ledger.nights.values())} live "
        f"of {len(ledger.nights)}, follows {sum(ledger.follows.values())}, "
        f"analytics events {ledger.tracked}"
    )
    print("\n## Reads during the load\n\n| read | answer | count |\n|---|---|--:|")
    for (name, status), count in sorted(reader.tally.items()):
        print(f"| {name} | {status} | {count} |")
    print(f"\nreads that failed: {reader.failed}")
    print("\n## Read models\n")
    print(findings.table())
    for example in findings.examples:
        print(f"- {example}")
    verdict = "agreed" if not findings.differences() else "still differ"
    print(f"\nread models {verdict} {agreed_after:.1f} s after the last fault and write")
    if died:
        print(f"instances that died by themselves: {died}")


def say(line: str) -> None:
    print(f"chaos: {line}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
