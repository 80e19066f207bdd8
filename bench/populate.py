"""`python -m bench.populate`: a realistic population, deterministic for a seed.

    python -m bench.populate --users 2000 --nights 30 --mode bulk
    python -m bench.populate --users 200 --nights 14 --mode rest --concurrency 8

Users live in time zones spread over the world; followers are heavy-tailed
(a Pareto draw: most people have tens, a few have thousands and are
celebrities above the threshold); each user has `nights` nights with their
own bedtime and sleep length, and opens the app a few times a day (product
analytics events).

Two modes:
- `rest`: real clients through the gateway: register, log in, follow, record
  nights, send TrackEvents. Slow, but every request is one an app would send.
- `bulk`: for large populations, the same domain events the services publish
  (UserRegistered, FollowCreated, CelebrityStatusChanged, SleepEntryCreated,
  ClientEventAccepted), straight to their topics, so every read model is
  built by its real consumers. Its users exist only in events: they cannot
  log in. The celebrity flag is set from the follower counts here, with
  `--celebrity-threshold` (the user service's ZENTRY_CELEBRITY_THRESHOLD).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx

#: Where people live, weighted roughly by where a sleep app's users are.
ZONES = (("America/Los_Angeles", 8), ("America/Chicago", 6), ("America/New_York", 10),
         ("America/Sao_Paulo", 6), ("Europe/London", 7), ("Europe/Berlin", 8),
         ("Africa/Lagos", 3), ("Asia/Kolkata", 10), ("Asia/Shanghai", 6), ("Asia/Tokyo", 6),
         ("Asia/Seoul", 4), ("Australia/Sydney", 4), ("Pacific/Auckland", 2),
         ("Asia/Kathmandu", 1))  # fmt: skip
PAGES = ("/feed", "/stats", "/leaderboards", "/me", "/nights/new", "/settings")
PASSWORD = "population-pass-1"


@dataclass
class Person:
    index: int
    user_id: str
    username: str
    time_zone: str
    bedtime: float  # minutes after local midnight, their usual
    hours: float  # their usual night
    followers: list[int] = field(default_factory=list)


@dataclass
class Population:
    people: list[Person]
    nights: int
    seed: int

    @classmethod
    def generate(cls, users: int, nights: int, seed: int, mean_followers: float = 30) -> Population:
        rng = random.Random(seed)
        zones = [z for z, _w in ZONES]
        weights = [w for _z, w in ZONES]
        people = [
            Person(
                index=i,
                user_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                username=f"pop{seed}_{i}",
                time_zone=rng.choices(zones, weights)[0],
                bedtime=(23 * 60 + rng.gauss(0, 50)) % 1440,
                hours=min(9.5, max(5.0, rng.gauss(7.3, 0.8))),
            )
            for i in range(users)
        ]
        alpha = 1.5  # Pareto: mean = scale * alpha / (alpha - 1)
        scale = mean_followers * (alpha - 1) / alpha
        for person in people:
            count = min(users - 1, int(scale * rng.paretovariate(alpha)))
            others = rng.sample(range(users - 1), count)
            person.followers = [o if o < person.index else o + 1 for o in others]
        return cls(people, nights, seed)

    def night(self, person: Person, days_ago: int, rng: random.Random) -> tuple[datetime, datetime]:
        """A night ending on the local date `days_ago` days before today, in their zone."""
        zone = ZoneInfo(person.time_zone)
        day = datetime.now(zone).date() - timedelta(days=days_ago)
        bed = person.bedtime + rng.gauss(0, 25)
        start_day = day - timedelta(days=1) if bed >= 12 * 60 else day
        start = datetime(start_day.year, start_day.month, start_day.day, tzinfo=zone)
        start += timedelta(minutes=bed)
        end = start + timedelta(hours=max(3.0, rng.gauss(person.hours, 0.6)))
        return start.astimezone(UTC), end.astimezone(UTC)

    def visits(self, person: Person, rng: random.Random) -> list[tuple[datetime, str]]:
        """Page views over the last day: a few visits of a few pages each."""
        now = datetime.now(UTC)
        out = []
        for _visit in range(rng.randint(1, 4)):
            at = now - timedelta(minutes=rng.uniform(10, 1400))
            for _page in range(rng.randint(1, 5)):
                out.append((at, rng.choice(PAGES)))
                at += timedelta(seconds=rng.uniform(5, 120))
        return out


class Progress:
    """A progress bar with a rate, on stderr."""

    def __init__(self, what: str, total: int):
        self.what, self.total, self.done = what, total, 0
        self.started = self.shown = time.monotonic()

    def add(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.shown > 0.5 or self.done >= self.total:
            self.shown = now
            share = self.done / self.total if self.total else 1
            bar = "#" * int(share * 30)
            rate = self.done / max(now - self.started, 1e-9)
            print(
                f"\r{self.what:<10} [{bar:<30}] {share:4.0%} {self.done}/{self.total} {rate:.0f}/s",
                end="\n" if self.done >= self.total else "",
                file=sys.stderr,
                flush=True,
            )


def bulk(population: Population, bootstrap: str, threshold: int) -> int:
    """Publish the population as the services' own events; how many."""
    from bench.bulk_events import BulkPublisher

    publisher = BulkPublisher(bootstrap, seed=population.seed)
    rng = random.Random(population.seed + 1)
    people = population.people
    progress = Progress("users", len(people))
    for person in people:
        publisher.profile(person.user_id, person.username, person.time_zone)
        if len(person.followers) >= threshold:
            publisher.celebrity(person.user_id)
        progress.add()
    follows = Progress("follows", sum(len(p.followers) for p in people))
    for person in people:
        for follower in person.followers:
            publisher.follow(people[follower].user_id, person.user_id)
        follows.add(len(person.followers))
    nights = Progress("nights", len(people) * population.nights)
    for person in people:
        for days_ago in range(population.nights, 0, -1):
            start, end = population.night(person, days_ago, rng)
            publisher.entry(person.user_id, start, end, person.time_zone)
        nights.add(population.nights)
    visits = Progress("app events", len(people))
    for person in people:
        for at, page in population.visits(person, rng):
            publisher.page_view(person.user_id, at, page)
        visits.add()
    publisher.flush()
    return publisher.sent


def rest(population: Population, base_url: str, concurrency: int) -> int:
    """Create the population through the gateway as apps would; how many requests."""
    rng = random.Random(population.seed + 1)
    people = population.people
    tokens: dict[int, str] = {}
    with (
        httpx.Client(base_url=base_url, timeout=30) as client,
        ThreadPoolExecutor(concurrency) as pool,
    ):

        def call(method: str, path: str, token: str | None = None, **kwargs) -> None:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            headers["User-Agent"] = "Zentry-populate/1.0 (like a phone app)"
            response = client.request(method, path, headers=headers, **kwargs)
            if response.status_code not in (200, 409):  # 409: there from an earlier run
                raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")

        def join(person: Person) -> None:
            body = {"username": person.username, "email": f"{person.username}@example.com"}
            call(
                "POST",
                "/v1/users",
                json={**body, "password": PASSWORD, "timeZone": person.time_zone},
            )
            session = client.post(
                "/v1/sessions", json={"username": person.username, "password": PASSWORD}
            )
            session.raise_for_status()
            tokens[person.index] = session.json()["accessToken"]

        def run(what: str, jobs: list) -> int:
            progress = Progress(what, len(jobs))
            for future in [pool.submit(job) for job in jobs]:
                future.result()
                progress.add()
            return len(jobs)

        sent = run("users", [lambda p=p: join(p) for p in people]) * 2
        sent += run(
            "follows",
            [
                lambda p=p, f=f: call("POST", f"/v1/users/{p.username}:follow", tokens[f])
                for p in people
                for f in p.followers
            ],
        )
        nights = []
        for person in people:
            for days_ago in range(population.nights, 0, -1):
                start, end = population.night(person, days_ago, rng)
                body = {"startTime": _stamp(start), "endTime": _stamp(end)}
                nights.append(
                    lambda p=person, b=body: call(
                        "POST", "/v1/sleepEntries", tokens[p.index], json=b
                    )
                )
        sent += run("nights", nights)
        batches = []
        for person in people:
            events = [
                {"eventId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                 "name": "page_view", "eventTime": _stamp(at), "page": page}
                for at, page in population.visits(person, rng)
            ]  # fmt: skip
            batches.append(
                lambda p=person, e=events: call(
                    "POST", "/v1/analytics/events:batchCreate", tokens[p.index], json={"events": e}
                )
            )
        sent += run("app events", batches)
    return sent


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def main(argv: list[str] | None = None) -> int:
    from infra import config
    from infra.mesh import gateway_url

    parser = argparse.ArgumentParser(
        prog="python -m bench.populate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--nights", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--mode", choices=("bulk", "rest"), default="bulk")
    parser.add_argument("--mean-followers", type=float, default=30)
    parser.add_argument("--celebrity-threshold", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8, help="rest mode: requests in flight")
    args = parser.parse_args(argv)
    settings = config.load()
    population = Population.generate(args.users, args.nights, args.seed, args.mean_followers)
    counts = sorted(len(p.followers) for p in population.people)
    print(
        f"populate: {args.users} users in {len(ZONES)} zones; followers median "
        f"{counts[len(counts) // 2]}, p99 {counts[int(len(counts) * 0.99)]}, max {counts[-1]}; "
        f"{args.nights} nights each",
        file=sys.stderr,
    )
    started = time.monotonic()
    if args.mode == "bulk":
        sent = bulk(population, settings.kafka.bootstrap_servers, args.celebrity_threshold)
    else:
        sent = rest(population, gateway_url(settings), args.concurrency)
    seconds = time.monotonic() - started
    what = "events published" if args.mode == "bulk" else "requests sent"
    print(f"populate: {sent} {what} in {seconds:.1f} s ({sent / seconds:.0f}/s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
