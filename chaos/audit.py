"""What every read model should show after a run, and what the API shows: the differences.

The expected state comes from the ledger alone (what the API acknowledged,
after `settle` finished the ambiguous writes). Each read model is read
through the public API, as its users read it, and each difference counts
once under one heading:

- lost: acknowledged, but not shown;
- duplicated: shown more than once;
- extra: shown, but deleted, never acknowledged, or not theirs to show;
- wrong: shown with another value or out of order.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import httpx

from chaos.load import Ledger, Night, User
from services.leaderboard import domain

MIN_NIGHTS = domain.parse_min_nights("daily=1,weekly=3,monthly=7,all-time=14")  # the default
WORKERS = 8  # checks in flight at once


@dataclass
class Findings:
    """Per read model: how many things were checked, and each kind of difference."""

    checked: Counter = field(default_factory=Counter)
    lost: Counter = field(default_factory=Counter)
    duplicated: Counter = field(default_factory=Counter)
    extra: Counter = field(default_factory=Counter)
    wrong: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def merge(self, other: Findings) -> None:
        for name in ("checked", "lost", "duplicated", "extra", "wrong"):
            getattr(self, name).update(getattr(other, name))
        self.examples += other.examples[: max(0, 20 - len(self.examples))]

    def summary(self) -> str:
        """The read models that differ, and how."""
        parts = []
        for model in sorted(self.checked):
            kinds = [(k, getattr(self, k)[model]) for k in ("lost", "duplicated", "extra", "wrong")]
            if any(n for _k, n in kinds):
                parts.append(f"{model}: " + ", ".join(f"{n} {k}" for k, n in kinds if n))
        return "; ".join(parts)

    def differences(self) -> int:
        return sum(sum(c.values()) for c in (self.lost, self.duplicated, self.extra, self.wrong))

    def note(self, model: str, kind: str, count: int, example: str) -> None:
        if count:
            getattr(self, kind)[model] += count
            if len(self.examples) < 20:
                self.examples.append(f"{model} {kind}: {example}")

    def compare_ids(self, model: str, expected: list[str], shown: list[str], who: str) -> None:
        self.checked[model] += len(expected)
        seen = Counter(shown)
        dupes = [i for i, n in seen.items() if n > 1]
        self.note(model, "duplicated", len(dupes), f"{who}: {dupes[:3]}")
        lost = [i for i in expected if i not in seen]
        self.note(model, "lost", len(lost), f"{who}: {lost[:3]}")
        extra = [i for i in seen if i not in set(expected)]
        self.note(model, "extra", len(extra), f"{who}: {extra[:3]}")
        if not (dupes or lost or extra) and list(dict.fromkeys(shown)) != expected:
            self.note(model, "wrong", 1, f"{who}: out of order")

    def table(self) -> str:
        rows = [
            "| read model | checked | lost | duplicated | extra | wrong |",
            "|---|--:|--:|--:|--:|--:|",
        ]
        for model in sorted(self.checked):
            rows.append(
                f"| {model} | {self.checked[model]} | {self.lost[model]} | "
                f"{self.duplicated[model]} | {self.extra[model]} | {self.wrong[model]} |"
            )
        return "\n".join(rows)


class Auditor:
    def __init__(self, base_url: str, ledger: Ledger, admin: User, started: datetime):
        self.api = httpx.Client(base_url=base_url, timeout=20)
        self.ledger = ledger
        self.admin = admin
        self.started = started
        self.today = datetime.now(UTC).date()

    def audit(self) -> Findings:
        """One pass over every read model, `WORKERS` checks at a time."""
        users = list(self.ledger.users.values())
        by_owner: dict[str, list[Night]] = defaultdict(list)
        for night in self.ledger.nights.values():
            if night.live and night.id:
                by_owner[night.owner].append(night)
        checks = []
        for user in users:
            mine = by_owner[user.username]
            checks += [
                lambda f, u=user, m=mine: self._nights(f, u, m),
                lambda f, u=user: self._feed(f, u, by_owner),
                lambda f, u=user, m=mine: self._stats(f, u, m),
                lambda f, u=user, m=mine: self._trend(f, u, m),
            ]
        for kind, day in (
            ("all-time", self.today),
            ("weekly", self.today - timedelta(days=10)),
            ("monthly", self.today - timedelta(days=20)),
            ("daily", self.today - timedelta(days=4)),
        ):
            for metric in domain.METRICS:
                checks.append(
                    lambda f, m=metric, k=kind, d=day: self._board(f, users, by_owner, m, k, d)
                )
        checks.append(self._analytics)
        found = Findings()
        with ThreadPoolExecutor(WORKERS) as pool:
            for part in pool.map(_checked, checks):
                found.merge(part)
        return found

    # -- each read model ---------------------------------------------------------------

    def _nights(self, found: Findings, user: User, nights: list[Night]) -> None:
        params = {
            "startDate": (self.today - timedelta(days=60)).isoformat(),
            "endDate": (self.today + timedelta(days=1)).isoformat(),
            "pageSize": 50,
        }
        shown = self._pages(f"/v1/users/{user.username}/sleepEntries", "sleepEntries", user, params)
        expected = {n.id: n for n in nights}
        found.compare_ids(
            "sleep: own nights", sorted(expected), sorted(e["id"] for e in shown), user.username
        )
        for entry in shown:
            night = expected.get(entry["id"])
            if night is not None:
                want = (
                    night.body()["startTime"],
                    night.body()["endTime"],
                    night.zone,
                    night.sleep_date,
                )
                got = (
                    entry["startTime"],
                    entry["endTime"],
                    entry.get("timeZone", ""),
                    entry.get("sleepDate", ""),
                )
                found.note(
                    "sleep: own nights",
                    "wrong",
                    int(got != want),
                    f"{entry['id']}: {got} != {want}",
                )

    def _feed(self, found: Findings, user: User, by_owner) -> None:
        followed = [a for (r, a), on in self.ledger.follows.items() if r == user.username and on]
        nights = [n for a in followed for n in by_owner[a]]
        nights.sort(key=lambda n: (_micros(n.create_time), n.id), reverse=True)
        shown = [i["entry"]["id"] for i in self._pages("/v1/feed", "items", user, {"pageSize": 25})]
        found.compare_ids("feed", [n.id for n in nights], shown, user.username)

    def _stats(self, found: Findings, user: User, nights: list[Night]) -> None:
        start = self.today - timedelta(days=60)
        mine = [n for n in nights if start.isoformat() <= n.sleep_date <= self.today.isoformat()]
        stats = self._get(
            "/v1/users/me/sleepStats",
            user,
            {"startDate": start.isoformat(), "endDate": self.today.isoformat()},
        )
        found.checked["statistics"] += 1
        mean = sum(n.seconds for n in mine) / len(mine) if mine else 0
        got = (int(stats.get("nightsLogged", 0)), _seconds(stats.get("averageDuration", "0s")))
        off = got[0] != len(mine) or abs(got[1] - mean) > 1
        found.note("statistics", "wrong", int(off), f"{user.username}: {got} != {len(mine), mean}")

    def _trend(self, found: Findings, user: User, nights: list[Night]) -> None:
        start = self.today - timedelta(days=60)
        trend = self._get(
            "/v1/users/me/sleepTrend",
            user,
            {"startDate": start.isoformat(), "endDate": self.today.isoformat()},
        )
        want = {n.sleep_date: n.seconds for n in nights if n.sleep_date >= start.isoformat()}
        got = {
            p["sleepDate"]: _seconds(p.get("duration", "0s"))
            for p in trend.get("points", [])
            if p.get("logged")
        }
        found.compare_ids("trend: logged dates", sorted(want), sorted(got), user.username)
        for day, seconds in got.items():
            if day in want:
                found.note(
                    "trend: logged dates",
                    "wrong",
                    int(seconds != want[day]),
                    f"{user.username} {day}: {seconds} != {want[day]}",
                )

    def _board(self, found, users: list[User], by_owner, metric: str, kind: str, day: date):
        window = domain.window_id(kind, day)
        sums = {}
        for user in users:
            nights = [
                n
                for n in by_owner[user.username]
                if window in domain.windows_of(date.fromisoformat(n.sleep_date))
            ]
            totals = domain.Totals(sum(n.seconds for n in nights), len(nights))
            if totals.nights and domain.qualifies(metric, kind, totals, MIN_NIGHTS):
                sums[user.id] = (totals.seconds, totals.nights)
        model = f"boards: {kind}"
        params = {"date": day.isoformat(), "pageSize": 100}
        ours = {u.id for u in users}
        shown = [
            s
            for s in self._pages(f"/v1/leaderboards/{metric}/{kind}", "standings", users[0], params)
            if s["userId"] in ours
        ]
        ranked = {u.id for u in users if u.public}  # the others share with followers only
        public = {u: s for u, s in sums.items() if u in ranked}
        self._standings(found, model, public, shown, f"{metric} {window}")
        for user in users:  # the following scope, as each of them sees it
            followed = {
                self.ledger.users[a].id
                for (r, a), on in self.ledger.follows.items()
                if r == user.username and on and a in self.ledger.users
            }
            circle = {u: s for u, s in sums.items() if u in followed | {user.id}}
            shown = self._pages(
                f"/v1/leaderboards/{metric}/{kind}",
                "standings",
                user,
                {**params, "scope": "following"},
            )
            self._standings(
                found, f"{model} following", circle, shown, f"{metric} {window} of {user.username}"
            )

    def _standings(self, found, model, sums: dict, shown: list[dict], who: str) -> None:
        found.compare_ids(model, sorted(sums), sorted(s["userId"] for s in shown), who)
        for standing in shown:
            want = sums.get(standing["userId"])
            got = (_seconds(standing.get("totalDuration", "0s")), int(standing.get("nights", 0)))
            if want is not None:
                found.note(model, "wrong", int(got != want), f"{who}: {got} != {want}")

    def _analytics(self, found: Findings) -> None:
        start = self.started.replace(minute=0, second=0, microsecond=0)
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        counts = self._get(
            f"/v1/analytics/events/chaos_{self.ledger.run}/counts",
            self.admin,
            {"granularity": "hour", "startTime": _stamp(start), "endTime": _stamp(end)},
        )
        found.checked["analytics: counts"] += 1
        got, want = int(counts.get("total", 0)), self.ledger.tracked
        if got < want:
            found.note("analytics: counts", "lost", want - got, f"{got} of {want}")
        elif got > want:
            found.note("analytics: counts", "duplicated", got - want, f"{got} for {want}")

    # -- reading -----------------------------------------------------------------------

    def _get(self, path: str, user: User, params: dict) -> dict:
        response = self.api.get(path, headers=user.auth, params=params)
        response.raise_for_status()
        return response.json()

    def _pages(self, path: str, items: str, user: User, params: dict) -> list[dict]:
        out, token = [], ""
        for _ in range(500):
            page = self._get(path, user, {**params, **({"pageToken": token} if token else {})})
            out += page.get(items, [])
            token = page.get("nextPageToken", "")
            if not token:
                return out
        raise AssertionError(f"{path}: the pages never ended")


def _checked(check) -> Findings:
    part = Findings()
    check(part)
    return part


def _seconds(duration: str) -> int:
    return int(float(duration.rstrip("s") or 0))


def _micros(stamp: str) -> int:
    """An RFC 3339 time (up to nanoseconds) in whole microseconds, as the feed orders by."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    seconds = int(datetime.fromisoformat(whole).replace(tzinfo=UTC).timestamp())
    return seconds * 1_000_000 + int((fraction + "000000")[:6])


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
