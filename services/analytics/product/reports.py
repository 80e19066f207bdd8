"""The product analytics queries: counts over time, breakdowns, top pages, traffic, funnels
and retention.

Each query checks its parameters, reads through the store, and shapes what
it read into periods of the caller's time zone: counts per minute from
`minute_counts` (kept as long as raw events), per hour and day from the
15-minute `counts`, visitors from the sketches (uniques.py), sessions from
`sessions`, retention from each user's first-seen time and active days
(cohorts.py). Funnels alone read raw events (funnels.py), and only those
bounded by the request: the steps' names, in at most 31 days plus a window
of at most 7, within the raw retention.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf import duration_pb2, timestamp_pb2
from psycopg.errors import QueryCanceled
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from zentry.analytics.v1 import product_analytics_service_pb2 as pb

from services.analytics.product import cohorts, funnels, periods, store, tracking
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
#: Funnels: the range their first steps are taken from, and the conversion window after it.
MAX_FUNNEL_SPAN = timedelta(days=31)
MIN_WINDOW, DEFAULT_WINDOW, MAX_WINDOW = timedelta(seconds=1), timedelta(days=1), timedelta(days=7)
DEFAULT_FUNNEL_SPAN = timedelta(days=7)
FUNNEL_SUBJECTS = ("visitor", "user")
#: What one funnel may read: visitors who started it, and the time its query may take.
MAX_FUNNEL_SUBJECTS = 200_000
FUNNEL_TIMEOUT_MS = 10_000
#: Retention: cohorts per query, and periods each is followed for, by granularity.
MAX_COHORTS = {"day": 31, "week": 12}
MAX_FOLLOWING = {"day": 31, "week": 12}
DEFAULT_FOLLOWING = {"day": 14, "week": 8}
DEFAULT_COHORT_SPAN = {"day": timedelta(days=14), "week": timedelta(weeks=8)}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Reports:
    def __init__(
        self,
        db: Database,
        uniques: Uniques,
        raw_retention: timedelta,
        rollup_retention: timedelta = timedelta(days=400),
    ):
        self._db = db
        self._uniques = uniques
        self._raw_retention = raw_retention
        self._rollup_retention = rollup_retention

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

    async def funnel(self, request: pb.GetFunnelRequest) -> pb.Funnel:
        """The funnel's figures by funnels.py's rules; the raw events it needs must still be
        kept (FailedPrecondition otherwise)."""
        steps = funnels.steps_of(request.steps)
        window = _window(request)
        by = _one_of(request.by or "visitor", FUNNEL_SUBJECTS, "by")
        tz_name, tz = _zone(request.time_zone)
        now = datetime.now(UTC)
        gone = FailedPrecondition(
            f"Funnels read raw events, which are kept for {self._raw_retention.days} days; "
            "ask for a later start_time (it is aligned down to the zone's midnight)."
        )
        oldest = now - self._raw_retention
        start, end = _past_range(
            request, DEFAULT_FUNNEL_SPAN, now, oldest, gone, max_span=MAX_FUNNEL_SPAN
        )
        start = periods.align(start, "day", tz)
        if start < oldest:
            raise gone
        too_much = FailedPrecondition(
            f"This funnel reads more than one query may ({MAX_FUNNEL_SUBJECTS} subjects, "
            f"{FUNNEL_TIMEOUT_MS // 1000} s); ask for a shorter range or rarer steps."
        )
        try:
            async with self._db.transaction() as session:
                await session.execute(text(f"SET LOCAL statement_timeout = {FUNNEL_TIMEOUT_MS}"))
                found = await store.step_times(
                    session,
                    steps,
                    start,
                    end,
                    end + window,
                    users_only=by == "user",
                    most=MAX_FUNNEL_SUBJECTS + 1,
                )
        except DBAPIError as error:
            if isinstance(error.orig, QueryCanceled):
                raise too_much from None
            raise
        if len(found) > MAX_FUNNEL_SUBJECTS:
            raise too_much
        bounds = (_micros(window), _micros(start - _EPOCH), _micros(end - _EPOCH))
        figures = funnels.summarize(
            steps, (funnels.journey(steps, times, *bounds) for times in found)
        )
        return pb.Funnel(
            steps=[_funnel_step(f) for f in figures],
            by=by,
            window=_duration_of(window),
            start_time=_stamp(start),
            end_time=_stamp(end),
            time_zone=tz_name,
        )

    async def retention(self, request: pb.GetRetentionRequest) -> pb.Retention:
        """Cohorts of users by first-seen day or week in the caller's zone (cohorts.py)."""
        granularity = periods.granularity_of(request.granularity or "week", cohorts.GRANULARITIES)
        _check_retention_subject(request.by)
        following = request.periods or DEFAULT_FOLLOWING[granularity]
        if not 1 <= following <= MAX_FOLLOWING[granularity]:
            raise InvalidArgument.field(
                "periods", f"must be 1 to {MAX_FOLLOWING[granularity]} for {granularity}s"
            )
        tz_name, tz = _zone(request.time_zone)
        now = datetime.now(UTC)
        gone = FailedPrecondition(
            f"Users' activity is kept for {self._rollup_retention.days} days; "
            "ask for a later start_time."
        )
        oldest = now - self._rollup_retention
        start, end = _past_range(request, DEFAULT_COHORT_SPAN[granularity], now, oldest, gone)
        most = MAX_COHORTS[granularity]
        count = sum(1 for p in cohorts.spans(start, most + 1, granularity, tz) if p.start < end)
        if count > most:
            raise InvalidArgument.field(
                "start_time", f"at most {most} {granularity}s of cohorts per query"
            )
        spans = cohorts.spans(start, count + following, granularity, tz)
        if spans[0].start < oldest:
            raise gone
        first, last = spans[0].start, spans[count - 1].end
        since, until = spans[1].start, min(spans[-1].end, now)
        async with self._db.transaction() as session:
            first_seen = await store.first_seen_between(session, first, last)
            activity = await store.activity_of_cohorts(
                session, first, last, since.date(), (until - timedelta(microseconds=1)).date()
            )
        rows = cohorts.table(spans, count, following, first_seen, activity, now)
        return pb.Retention(
            granularity=granularity,
            time_zone=tz_name,
            by="user",
            cohorts=[_cohort(row, spans, i, now) for i, row in enumerate(rows)],
        )


def _past_range(
    request,
    default_span: timedelta,
    now: datetime,
    oldest: datetime,
    gone: FailedPrecondition,
    max_span: timedelta | None = None,
) -> tuple[datetime, datetime]:
    """The request's [start_time, end_time), its end no later than now (nothing has happened
    after it) and its start `default_span` before the end if not given.

    InvalidArgument naming start_time if the range is empty, starts in the future or is
    longer than `max_span`; `gone` if it starts before `oldest`, where the data it needs is
    no longer kept. Checked in an order that never computes a time out of datetime's range.
    """
    start, end = _time(request, "start_time"), _time(request, "end_time") or now
    if start is not None and start >= end:
        raise InvalidArgument.field("start_time", "must be before end_time")
    if start is not None and start >= now:
        raise InvalidArgument.field("start_time", "must be in the past")
    end = min(end, now)
    if end <= oldest:
        raise gone
    start = start or end - default_span
    if max_span is not None and end - start > max_span:
        raise InvalidArgument.field("start_time", f"the range covers at most {max_span.days} days")
    if start < oldest:
        raise gone
    return start, end


def _window(request: pb.GetFunnelRequest) -> timedelta:
    if not request.HasField("window"):
        return DEFAULT_WINDOW
    window = request.window.ToTimedelta()
    if not MIN_WINDOW <= window <= MAX_WINDOW:
        raise InvalidArgument.field("window", "must be 1 second to 7 days, e.g. '3600s'")
    return window


def _one_of(value: str, allowed: tuple[str, ...], field: str) -> str:
    if value not in allowed:
        raise InvalidArgument.field(field, f"must be one of {', '.join(allowed)}")
    return value


def _check_retention_subject(by: str) -> None:
    if by == "visitor":
        raise InvalidArgument.field(
            "by",
            "retention follows signed-in users only: an anonymous visitor's id is made with "
            "a salt that changes every UTC day, so no visitor can be seen coming back",
        )
    _one_of(by or "user", ("user",), "by")


def _funnel_step(figures: funnels.StepFigures) -> pb.FunnelStep:
    step = pb.FunnelStep(
        name=figures.name,
        count=figures.reached,
        dropped_count=figures.dropped,
        drop_off_rate=figures.drop_off_rate,
        conversion_rate=figures.conversion_rate,
    )
    if figures.median_seconds is not None:
        step.median_time_from_previous.CopyFrom(
            _duration_of(timedelta(seconds=figures.median_seconds))
        )
    return step


def _cohort(row: cohorts.CohortRow, spans: list[cohorts.Span], index: int, now) -> pb.Cohort:
    points = []
    for offset, count in enumerate(row.returned):
        span = spans[index + offset]
        points.append(
            pb.RetentionPoint(
                offset=offset,
                period=_period(span),
                count=count,
                rate=count / row.size if row.size else 0.0,
                in_progress=span.end > now,
            )
        )
    return pb.Cohort(period=_period(row.period), size=row.size, points=points)


def _micros(span: timedelta) -> int:
    return span // timedelta(microseconds=1)


def _stamp(when: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when)
    return stamp


def _duration_of(span: timedelta) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromTimedelta(span)
    return duration


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


def _period(period: Period | cohorts.Span) -> pb.Period:
    start = timestamp_pb2.Timestamp()
    start.FromDatetime(period.start)
    return pb.Period(start_time=start, label=period.label)


def _duration(seconds: float) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=round(seconds))
