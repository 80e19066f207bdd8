"""`python -m infra status --mesh`: the running mesh at a glance, for whoever is woken at night.

Four views, each read from the server that knows, every call with a timeout:

- instances: every instance in Consul's catalog and the worst of its checks
  (its own and its node's, as Consul's `passing` filter counts them), with the
  failing checks' output;
- lag: for each of the mesh's consumer groups (`<service>.<name>`, a consuming
  service's: see `is_mesh_group`) and each topic it reads, how far its committed
  offsets are behind the topic's end, summed over partitions and at the worst
  partition, and how many members consume now;
- outbox: per service, the rows its relay has not published yet and the age of
  the oldest (the relay publishes in id order, so the oldest is the lowest id:
  an index lookup, and the count stops at OUTBOX_COUNT_CAP);
- parked: per dead-letter topic and group, the events parked
  (services.kit.deadletters.parked_events, as `deadletters list` counts them) and
  how many of them the group's redrive has not published again yet. It reads
  the dead-letter topics only when they hold at most PARKED_READ_LIMIT events
  in all, and not at all when they are empty.

`collect()` returns the data (a MeshStatus: what tests and `--json` read);
`render()` makes the table; `attention()` lists what needs a person. A server
that does not answer leaves its views empty and is named in `unreachable`;
the others are still shown.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field

import httpx
import psycopg
from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from sqlalchemy.engine import make_url

from infra.config import Settings
from infra.errors import InfraError
from services.kit.addresses import kafka_security
from services.kit.roster import CONSUMING, SERVICES
from services.kit.settings import Env, postgres_dsn
from services.kit.topics import DEAD_LETTER_SUFFIX

#: Seconds any one call to a server may take.
TIMEOUT = 5.0
#: Outbox rows counted at most; more shows as "at least" this many.
OUTBOX_COUNT_CAP = 100_000
#: Parked events read at most to count them per group; beyond, per topic only.
PARKED_READ_LIMIT = 10_000
#: Consul's worst-first order of a check's status.
_SEVERITY = {"passing": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class Thresholds:
    """What counts as needing attention besides failing checks and parked events."""

    #: Events a group may be behind on one topic (summed over its partitions).
    max_lag: int = 1000
    #: Seconds the oldest outbox row may wait for its relay.
    max_outbox_age: float = 60.0


@dataclass(frozen=True)
class InstanceHealth:
    service: str
    instance_id: str
    address: str
    #: passing | warning | critical: the worst of the instance's and its node's checks.
    status: str
    #: The output of the checks that do not pass ("" when passing).
    output: str = ""


@dataclass(frozen=True)
class GroupLag:
    group: str
    topic: str
    #: Events behind the topic's end, summed over its partitions.
    lag: int
    #: The partition furthest behind and by how much (None when nothing lags).
    worst_partition: int | None
    worst_lag: int
    #: Members consuming now; 0: nobody reads this group's topics.
    members: int
    state: str


@dataclass(frozen=True)
class OutboxBacklog:
    service: str
    database: str
    #: ok | no database (service never started) | no outbox (the service publishes nothing)
    state: str
    waiting: int = 0
    #: Seconds the oldest row has waited (None: no row waits).
    oldest_seconds: float | None = None


@dataclass(frozen=True)
class ParkedCount:
    dead_letter_topic: str
    #: The group that parked them; None when there were too many to read (see PARKED_READ_LIMIT).
    group: str | None
    parked: int
    #: Not re-driven yet (after `<group>.redrive`'s committed offset); None if unknown.
    waiting: int | None


@dataclass
class MeshStatus:
    """What `collect` found; a view whose server did not answer stays None."""

    instances: list[InstanceHealth] | None = None
    lag: list[GroupLag] | None = None
    #: Consumer groups not shown (benches, tests, redrive progress).
    other_groups: int = 0
    outbox: list[OutboxBacklog] | None = None
    parked: list[ParkedCount] | None = None
    #: One line per server that could not be read, naming it.
    unreachable: list[str] = field(default_factory=list)


class Unreachable(InfraError):
    """A server did not answer (or answered with an error); the message names it."""


def is_mesh_group(group: str) -> bool:
    """A group of the mesh's consumers: `<consuming service>.<name>` (feed.entries), not a
    bench's or a test's (`analytics.rollups.bench-…`) nor a redrive's progress (`….redrive`)."""
    service, dot, name = group.partition(".")
    return bool(dot) and service in CONSUMING and name != "" and "." not in name


def collect(
    settings: Settings,
    *,
    groups: Callable[[str], bool] = is_mesh_group,
    databases: Mapping[str, str] | None = None,
) -> MeshStatus:
    """Read the four views from Consul, Kafka and PostgreSQL (blocking, a few seconds at most).

    `groups` picks the consumer groups shown; `databases` maps a service to its
    SQLAlchemy URL (default: every service's, as it would connect).
    """
    status = MeshStatus()
    if databases is None:
        env = Env()
        databases = {service: postgres_dsn(service, env) for service in SERVICES}
    try:
        status.instances = instances(settings.consul.http_url)
    except Unreachable as error:
        status.unreachable.append(str(error))
    try:
        status.lag, status.other_groups, status.parked = kafka_views(
            settings.kafka.bootstrap_servers, groups
        )
    except Unreachable as error:
        status.unreachable.append(str(error))
    try:
        status.outbox = outbox_backlogs(databases)
    except Unreachable as error:
        status.unreachable.append(str(error))
    return status


# Consul


def instances(consul_url: str, timeout: float = TIMEOUT) -> list[InstanceHealth]:
    """Every registered instance (but Consul's own) and its health, by service and id.

    One call per service: the catalog holds Zentry's few services.
    Raises Unreachable when Consul does not answer.
    """
    try:
        with httpx.Client(base_url=consul_url, timeout=timeout) as http:
            names = sorted(_get(http, "/v1/catalog/services"))
            entries = [
                e for n in names if n != "consul" for e in _get(http, f"/v1/health/service/{n}")
            ]
    except httpx.HTTPError as error:
        raise Unreachable(f"Consul does not answer at {consul_url}: {error}") from None
    found = []
    for entry in entries:
        service, checks = entry["Service"], entry.get("Checks") or []
        worst = max(
            (c["Status"] for c in checks), key=lambda s: _SEVERITY.get(s, 2), default="passing"
        )
        failing = [
            f"{c['Name']}: {' '.join((c.get('Output') or c['Status']).split())}"
            for c in checks
            if c["Status"] != "passing"
        ]
        found.append(
            InstanceHealth(
                service=service["Service"],
                instance_id=service["ID"],
                address=f"{service['Address'] or entry['Node']['Address']}:{service['Port']}",
                status=worst,
                output="; ".join(failing)[:500],
            )
        )
    return sorted(found, key=lambda i: (i.service, i.instance_id))


def _get(http: httpx.Client, path: str):
    response = http.get(path)
    response.raise_for_status()
    return response.json()


# Kafka


def kafka_views(
    bootstrap: str, groups: Callable[[str], bool] = is_mesh_group, timeout: float = TIMEOUT
) -> tuple[list[GroupLag], int, list[ParkedCount]]:
    """(the chosen groups' lag, how many groups were not chosen, the parked counts).

    Raises Unreachable when Kafka does not answer.
    """
    # log_level 0: a broker that is down is said once, here, not by librdkafka's log lines.
    admin = AdminClient({**kafka_security(), "bootstrap.servers": bootstrap, "log_level": 0})
    try:
        topics = admin.list_topics(timeout=timeout).topics
    except KafkaException as error:
        raise Unreachable(f"Kafka does not answer at {bootstrap}: {error.args[0].str()}") from None
    try:
        listed = admin.list_consumer_groups(request_timeout=timeout).result(timeout=timeout * 2)
        names = sorted(g.group_id for g in listed.valid)
        chosen = [n for n in names if groups(n)]
        lag = _lag(admin, chosen, topics, timeout)
        parked = _parked(admin, bootstrap, topics, timeout)
    except (KafkaException, TimeoutError) as error:
        raise Unreachable(f"Kafka at {bootstrap} failed to answer: {_one_line(error)}") from None
    return lag, len(names) - len(chosen), parked


def _lag(admin: AdminClient, chosen: list[str], topics: Mapping, timeout: float) -> list[GroupLag]:
    if not chosen:
        return []
    described = {
        name: future.result(timeout=timeout * 2)
        for name, future in admin.describe_consumer_groups(chosen, request_timeout=timeout).items()
    }
    committed: dict[str, dict[tuple[str, int], int]] = {}
    for name in chosen:  # the API takes one group per request
        request = [ConsumerGroupTopicPartitions(name)]
        result = admin.list_consumer_group_offsets(request, request_timeout=timeout)[name]
        committed[name] = {
            (p.topic, p.partition): p.offset
            for p in result.result(timeout=timeout * 2).topic_partitions
            if p.error is None
        }
    read: dict[str, set[str]] = {name: {t for t, _p in committed[name]} for name in chosen}
    for name, description in described.items():
        for member in description.members:
            if member.assignment:
                read[name] |= {p.topic for p in member.assignment.topic_partitions}
    wanted = {t for names in read.values() for t in names if t in topics}
    partitions = [TopicPartition(t, p) for t in sorted(wanted) for p in topics[t].partitions]
    ends = _offsets(admin, partitions, OffsetSpec.latest(), timeout)
    starts = _offsets(admin, partitions, OffsetSpec.earliest(), timeout)
    found = []
    for name in chosen:
        for topic in sorted(read[name] & wanted):
            behind = {}
            for p in sorted(topics[topic].partitions):
                at = committed[name].get((topic, p), -1)
                # No commit yet: the group starts from the earliest (services.kit.consumer).
                behind[p] = max(0, ends[(topic, p)] - (at if at >= 0 else starts[(topic, p)]))
            worst = max(behind, key=lambda p: behind[p])
            description = described[name]
            found.append(
                GroupLag(
                    group=name,
                    topic=topic,
                    lag=sum(behind.values()),
                    worst_partition=worst if behind[worst] else None,
                    worst_lag=behind[worst],
                    members=len(description.members),
                    state=description.state.name.lower(),
                )
            )
    return found


def _offsets(
    admin: AdminClient, partitions: list[TopicPartition], spec: OffsetSpec, timeout: float
) -> dict[tuple[str, int], int]:
    if not partitions:
        return {}
    futures = admin.list_offsets({p: spec for p in partitions}, request_timeout=timeout)
    return {
        (p.topic, p.partition): future.result(timeout=timeout * 2).offset
        for p, future in futures.items()
    }


def _parked(
    admin: AdminClient, bootstrap: str, topics: Mapping, timeout: float
) -> list[ParkedCount]:
    # A dead-letter topic has one partition, kept forever; a redrive marks its progress as
    # the committed offset of `<group>.redrive` on it (services.kit.deadletters).
    try:
        from services.kit.deadletters import parked_events  # needs the generated protos
    except ImportError as error:
        raise InfraError(f"{error}: the generated code is missing; run `make setup`") from None

    dlts = [TopicPartition(t, 0) for t in sorted(topics) if t.endswith(DEAD_LETTER_SUFFIX)]
    ends = _offsets(admin, dlts, OffsetSpec.latest(), timeout)
    starts = _offsets(admin, dlts, OffsetSpec.earliest(), timeout)
    sizes = {tp.topic: ends[(tp.topic, 0)] - starts[(tp.topic, 0)] for tp in dlts}
    if not any(sizes.values()):
        return []
    if sum(sizes.values()) > PARKED_READ_LIMIT:
        return [ParkedCount(dlt, None, n, None) for dlt, n in sizes.items() if n]
    found = []
    for dlt, events in parked_events(bootstrap).items():
        for group, count in sorted(Counter(p.group for p in events).items()):
            done = _committed(admin, f"{group}.redrive", dlt, timeout)
            waiting = sum(1 for p in events if p.group == group and p.offset >= done)
            found.append(ParkedCount(dlt, group, count, waiting))
    return found


def _committed(admin: AdminClient, group: str, topic: str, timeout: float) -> int:
    """`group`'s committed offset on partition 0 of `topic`; 0 if it never committed."""
    request = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0)])]
    result = admin.list_consumer_group_offsets(request, request_timeout=timeout)[group]
    offsets = [
        p.offset for p in result.result(timeout=timeout * 2).topic_partitions if p.error is None
    ]
    return max([0, *offsets])


# PostgreSQL

_BACKLOG = (
    "SELECT (SELECT count(*) FROM (SELECT 1 FROM outbox LIMIT %s) AS capped),"
    " (SELECT extract(epoch FROM now() - created_at) FROM outbox ORDER BY id LIMIT 1)"
)


def outbox_backlogs(databases: Mapping[str, str], timeout: float = TIMEOUT) -> list[OutboxBacklog]:
    """Each service's outbox rows and the age of its oldest, from `databases` (service: URL).

    Raises Unreachable when PostgreSQL does not answer.
    """
    found = []
    existing = _existing_databases(databases.values(), timeout)
    for service, url in databases.items():
        conninfo, name = _conninfo(url)
        if name not in existing:
            found.append(OutboxBacklog(service, name, "no database"))
            continue
        try:
            with _connect(conninfo, timeout) as conn:
                waiting, oldest = conn.execute(_BACKLOG, (OUTBOX_COUNT_CAP,)).fetchone()
        except psycopg.errors.UndefinedTable:
            found.append(OutboxBacklog(service, name, "no outbox"))
            continue
        except psycopg.Error as error:
            raise Unreachable(f"PostgreSQL: {name}: {_one_line(error)}") from None
        found.append(
            OutboxBacklog(service, name, "ok", waiting, None if oldest is None else float(oldest))
        )
    return found


def _existing_databases(urls: Iterable[str], timeout: float) -> set[str]:
    """Which of the databases exist, asked of the server's maintenance database `postgres`."""
    urls = list(urls)
    if not urls:
        return set()
    conninfo, _name = _conninfo(urls[0], database="postgres")
    names = [_conninfo(url)[1] for url in urls]
    try:
        with _connect(conninfo, timeout) as conn:
            rows = conn.execute(
                "SELECT datname FROM pg_database WHERE datname = ANY(%s)", (names,)
            ).fetchall()
    except psycopg.Error as error:
        where = make_url(urls[0])
        raise Unreachable(
            f"PostgreSQL does not answer at {where.host}:{where.port}: {_one_line(error)}"
        ) from None
    return {row[0] for row in rows}


def _conninfo(url: str, database: str | None = None) -> tuple[str, str]:
    """psycopg's connection string for a SQLAlchemy URL (or `database` there), and its database."""
    parsed = make_url(url)
    if database:
        parsed = parsed.set(database=database)
    return parsed.set(drivername="postgresql").render_as_string(False), parsed.database or ""


def _connect(conninfo: str, timeout: float) -> psycopg.Connection:
    """A connection whose connecting and every statement give up after `timeout`."""
    return psycopg.connect(
        conninfo,
        connect_timeout=max(1, round(timeout)),
        options=f"-c statement_timeout={round(timeout * 1000)}",
    )


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


# What a person reads


def attention(status: MeshStatus, limits: Thresholds = Thresholds()) -> list[str]:
    """What needs a person, one line each (empty: all is well, as far as was read)."""
    lines = []
    for i in status.instances or []:
        if i.status != "passing":
            lines.append(f"{i.instance_id} ({i.service}) is {i.status}: {i.output}")
    for g in status.lag or []:
        if g.lag > limits.max_lag:
            who = f"{g.members} member(s)" if g.members else "nobody consumes it"
            lines.append(
                f"{g.group} is {g.lag} events behind on {g.topic} "
                f"(partition {g.worst_partition}: {g.worst_lag}); {who}"
            )
    for b in status.outbox or []:
        if b.oldest_seconds is not None and b.oldest_seconds > limits.max_outbox_age:
            lines.append(
                f"outbox of {b.service}: {_count(b.waiting)} event(s) waiting, the oldest for "
                f"{_age(b.oldest_seconds)}: is a relay running (an instance of {b.service})?"
            )
    for p in status.parked or []:
        if p.waiting is None:
            lines.append(f"{p.parked} events parked on {p.dead_letter_topic}: `make dead-letters`")
        elif p.waiting:
            lines.append(
                f"{p.waiting} event(s) of {p.group} parked on {p.dead_letter_topic}, not "
                f"re-driven: `make dead-letters`, fix, `make redrive GROUP={p.group}`"
            )
    return lines


def exit_code(status: MeshStatus, limits: Thresholds = Thresholds()) -> int:
    """0 all is well, 3 something needs attention, 1 a server could not be read."""
    if status.unreachable:
        return 1
    return 3 if attention(status, limits) else 0


def render(status: MeshStatus, limits: Thresholds = Thresholds()) -> str:
    """The compact tables, then what needs attention (or that nothing does)."""
    parts = []
    if status.instances is not None:
        parts.append(
            _table(
                "INSTANCES (Consul)",
                ["service", "instance", "address", "health"],
                [[i.service, i.instance_id, i.address, _health(i)] for i in status.instances],
                empty="no instance is registered: is the mesh running (`make dev`)?",
            )
        )
    if status.lag is not None:
        others = f"; {status.other_groups} other groups not shown" if status.other_groups else ""
        parts.append(
            _table(
                f"CONSUMER LAG (events behind; alert above {limits.max_lag}{others})",
                ["group", "topic", ">lag", "worst partition", ">members"],
                [
                    [
                        g.group,
                        g.topic,
                        str(g.lag),
                        f"{g.worst_partition}: {g.worst_lag}"
                        if g.worst_partition is not None
                        else "-",
                        str(g.members) if g.members else "none",
                    ]
                    for g in status.lag
                ],
                empty="no consumer group of the mesh yet",
            )
        )
    if status.outbox is not None:
        parts.append(
            _table(
                f"OUTBOX (alert when the oldest waits over {limits.max_outbox_age:g} s)",
                ["service", "database", ">waiting", ">oldest"],
                [
                    [
                        b.service,
                        b.database,
                        _count(b.waiting) if b.state == "ok" else b.state,
                        _age(b.oldest_seconds) if b.oldest_seconds is not None else "-",
                    ]
                    for b in status.outbox
                ],
            )
        )
    if status.parked is not None:
        parts.append(
            _table(
                "PARKED (dead letters)",
                ["dead-letter topic", "group", ">parked", ">not re-driven"],
                [
                    [
                        p.dead_letter_topic,
                        p.group or "(too many to read)",
                        str(p.parked),
                        "?" if p.waiting is None else str(p.waiting),
                    ]
                    for p in status.parked
                ],
                empty="nothing is parked",
            )
        )
    lines = attention(status, limits)
    if lines:
        parts.append("NEEDS ATTENTION\n" + "\n".join(f"  ! {line}" for line in lines))
    elif not status.unreachable:
        parts.append("all is well")
    return "\n\n".join(parts)


def as_json(status: MeshStatus, limits: Thresholds = Thresholds(), **more) -> str:
    """The same as data: the views, `attention` and `unreachable` (plus `more`)."""
    return json.dumps({**more, **asdict(status), "attention": attention(status, limits)}, indent=1)


def _health(i: InstanceHealth) -> str:
    return i.status if i.status == "passing" else f"{i.status.upper()}  {i.output[:100]}"


def _count(n: int) -> str:
    return f"{n}+" if n >= OUTBOX_COUNT_CAP else str(n)


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def _table(title: str, header: list[str], rows: list[list[str]], empty: str = "") -> str:
    """Columns padded to their widest cell; a header starting with `>` is right-aligned."""
    if not rows:
        return f"{title}\n  {empty}"
    right = [h.startswith(">") for h in header]
    header = [h.lstrip(">") for h in header]
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [
            cell.rjust(w) if r else cell.ljust(w)
            for cell, w, r in zip(cells, widths, right, strict=True)
        ]
        return ("  " + "  ".join(padded)).rstrip()

    return "\n".join([title, line(header), *(line(r) for r in rows)])
