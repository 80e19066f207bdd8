"""The product analytics queries: counts over time, breakdowns, top pages, traffic.

Each query checks its parameters, reads rollups only (never raw events)
through the store, and shapes them into periods of the caller's time zone:
counts per minute from `minute_counts` (kept as long as raw events), per
hour and day from the 15-minute `counts`, visitors from the sketches
(uniques.py) and sessions from `sessions`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf import duration_pb2, timestamp_pb2
from zentry.analytics.v1 import product_analytics_service_pb2 as pb

from services.analytics.product import periods, store, tracking
from services.analytics.product.periods import Period
from services.analytics.product.uniques import Uniques
from services.kit.db import Database
from services.kit.errors import FailedPrecondition, InvalidArgument
from services.kit.zones import zone

#: The longest range each granularity may cover in one query.
MAX_SPAN = {"minute": timedelta(hours=24), "hour": timedelta(days=31), "day": timedelta(days=400)}
#: Traffic merges visitor sketches per period: shorter ranges keep that quick.
MAX_TRAFFIC_SPAN = {"hour": timedelta(days=7), "day": timedelta(days=92)}
DEFAULT_LIMIT, MAX_LIMIT = 10, 100


class Reports:
    def __init__(self, db: Database, uniques: Uniques, raw_retention: timedelta):
        self._db = db
        self._uniques = uniques
        self._raw_retention = raw_retention

    async def event_counts(self, request: pb.GetEventCountsRequest) -> pb.EventCounts:
        name = _event_name(request.name)
        granularity = periods.granularity_of(request.granularity, ("minute", "hour", "day"))
        tz_name, tz = _zone(request.time_zone)
        now = datetime.now(UTC)
        start, end = _range(request, granularity, now)
        spans = periods.split(start, end, granularity, tz, MAX_SPAN[granularity])
        first = spans[0].start
        if granularity == "minute" and first < now - self._raw_retention:
            raise FailedPrecondition(
                f"Per-minute counts are kept for {self._raw_retention.days} days; "
                "ask for hour or day granularity for older ranges."
            )
        async with self._db.transaction() as session:
            if granularity == "minute":
                found = await store.events_per_minute(session, name, first, end)
            else:
                found = await store.events_per_bucket(session, name, first, end)
        points = [pb.CountPoint(period=_period(p), count=_sum(found, p)) for p in spans]
        return pb.EventCounts(
            name=name,
            granularity=granularity,
            time_zone=tz_name,
            points=points,
            total=sum(p.count for p in points),
        )

    async def breakdown(self, name: str, dimension: str, request, limit: int) -> pb.EventBreakdown:
        name = _event_name(name)
        _check_dimension(dimension)
        limit = _limit(limit)
        _name, tz = _zone(request.time_zone)
        start, end = _range(request, "day", datetime.now(UTC))
        if end - start > MAX_SPAN["day"]:
            raise InvalidArgument.field("start_time", "a breakdown covers at most 400 days")
        first = periods.align(start, "day", tz)  # whole local days, as a day query counts
        async with self._db.transaction() as session:
            total, values = await store.breakdown(session, name, dimension, first, end)
        without = total - sum(values.values())
        if without > 0:
            values[""] = without
        top = sorted(values.items(), key=lambda item: (-item[1], item[0]))[:limit]
        return pb.EventBreakdown(
            name=name,
            dimension=dimension,
            rows=[pb.BreakdownRow(value=v, count=n) for v, n in top],
            total=total,
        )

    async def traffic(self, request: pb.GetTrafficRequest) -> pb.Traffic:
        granularity = periods.granularity_of(request.granularity, ("hour", "day"))
        tz_name, tz = _zone(request.time_zone)
        start, end = _range(request, granularity, datetime.now(UTC))
        spans = periods.split(start, end, granularity, tz, MAX_TRAFFIC_SPAN[granularity])
        first = spans[0].start
        async with self._db.transaction() as session:
            events = await store.all_events_per_bucket(session, first, end)
            views = await store.events_per_bucket(session, tracking.PAGE_VIEW, first, end)
            visits = await store.visits_per_bucket(session, first, end)
            visitors, all_visitors = await self._uniques.count(session, [p.buckets for p in spans])
        points = []
        for period, unique in zip(spans, visitors, strict=True):
            rows = [visits[b] for b in period.buckets if b in visits]
            sessions = sum(r.sessions for r in rows)
            seconds = sum(r.seconds for r in rows)
            points.append(
                pb.TrafficPoint(
                    period=_period(period),
                    events=_sum(events, period),
                    page_views=_sum(views, period),
                    unique_visitors=unique,
                    sessions=sessions,
                    bounce_rate=sum(r.bounces for r in rows) / sessions if sessions else 0.0,
                    average_session_duration=_duration(seconds / sessions if sessions else 0.0),
                )
            )
        return pb.Traffic(
            granularity=granularity,
            time_zone=tz_name,
            points=points,
            unique_visitors=all_visitors,
            sessions=sum(p.sessions for p in points),
        )


def _event_name(name: str) -> str:
    if not tracking.EVENT_NAME.fullmatch(name):
        raise InvalidArgument.field("name", "must be an event name such as 'page_view'")
    return name


def _check_dimension(dimension: str) -> None:
    if dimension in ("page", "referrer"):
        return
    key = dimension.removeprefix("property.")
    if key == dimension or not tracking.PROPERTY_KEY.fullmatch(key):
        raise InvalidArgument.field(
            "dimension", "must be 'page', 'referrer' or 'property.<key>', e.g. 'property.plan'"
        )


def _limit(limit: int) -> int:
    if not 0 <= limit <= MAX_LIMIT:
        raise InvalidArgument.field("limit", f"must be 1 to {MAX_LIMIT} (0 means {DEFAULT_LIMIT})")
    return limit or DEFAULT_LIMIT


def _zone(name: str):
    name = name or "UTC"
    return name, zone(name)


def _range(request, granularity: str, now: datetime) -> tuple[datetime, datetime]:
    """The request's start_time and end_time, completed as `periods.time_range` does."""
    return periods.time_range(
        _time(request, "start_time"), _time(request, "end_time"), granularity, now
    )


def _time(request, field: str) -> datetime | None:
    return getattr(request, field).ToDatetime(tzinfo=UTC) if request.HasField(field) else None


def _sum(found: dict, period: Period) -> int:
    return int(sum(found.get(b, 0) for b in period.buckets))


def _period(period: Period) -> pb.Period:
    start = timestamp_pb2.Timestamp()
    start.FromDatetime(period.start)
    return pb.Period(start_time=start, label=period.label)


def _duration(seconds: float) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=round(seconds))
