"""REST load from several clients, and the ledger of what the API acknowledged.

Each client is a thread with its own users. It registers them, follows and
unfollows, records nights (with a request id), moves them to another day and
zone, deletes them, starts nights live and cancels most of them (the rest stay
open: no read model may count them), and sends product-analytics batches. Every write is
retried, with the same request id or body, while the answer says to try
again (429, 5xx, a broken connection), for up to `GIVE_UP` seconds; a write
still unanswered then is ambiguous: it may or may not have happened. The
ledger keeps what was acknowledged and what is ambiguous; `settle` later
retries the ambiguous ones as a patient client would, so every write ends
acknowledged and the audit knows exactly what to expect.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx

PASSWORD = "chaos-sleeps-well-42"
GIVE_UP = 20.0  # seconds of retries before a write counts as ambiguous
ZONES = ("UTC", "Asia/Tokyo", "America/Los_Angeles", "Europe/Berlin", "Asia/Kolkata")
#: Days before today a night may end on: two apart, since zones 17 hours apart would let
#: nights of neighbouring days overlap (which the API refuses).
SLOTS = range(2, 42, 2)


class Ambiguous(Exception):
    """The write was retried until GIVE_UP without an answer: it may have happened."""


@dataclass
class User:
    username: str
    id: str = ""
    token: str = ""
    #: Shares their nights with everyone, so stands on the global boards (every other user).
    public: bool = False

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Night:
    owner: str  # username
    request_id: str
    day: int  # days before today, in its zone
    zone: str
    hours: float
    id: str = ""
    create_time: str = ""
    live: bool = True
    days_held: set[int] = field(default_factory=set)

    def body(self) -> dict:
        end_local = datetime.combine(
            datetime.now(UTC).date() - timedelta(days=self.day),
            datetime.min.time().replace(hour=7),
            ZoneInfo(self.zone),
        )
        start = end_local - timedelta(hours=self.hours)
        return {
            "startTime": _stamp(start),
            "endTime": _stamp(end_local),
            "timeZone": self.zone,
        }

    @property
    def seconds(self) -> int:
        """How long it lasted: a night across a change of clocks is an hour off `hours`."""
        body = self.body()
        start, end = (_instant(body[k]) for k in ("startTime", "endTime"))
        return int((end - start).total_seconds())

    @property
    def sleep_date(self) -> str:
        """The local date it ended on, in its zone (the sleep service's rule)."""
        return _instant(self.body()["endTime"]).astimezone(ZoneInfo(self.zone)).date().isoformat()


@dataclass
class Ledger:
    """What the API acknowledged, and the writes still ambiguous (as closures to retry)."""

    run: str
    users: dict[str, User] = field(default_factory=dict)
    nights: dict[str, Night] = field(default_factory=dict)  # by request id
    follows: dict[tuple[str, str], bool] = field(default_factory=dict)
    tracked: int = 0  # analytics events acknowledged
    ambiguous: list = field(default_factory=list)  # (what, retry()) pairs
    counts: dict[str, int] = field(default_factory=dict)
    #: what an ambiguous write concerns: left alone until `settle`, so a retry of it
    #: can never land after a later write of the same thing
    frozen: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, what: str) -> None:
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def unsure(self, what: str, retry) -> None:
        with self.lock:
            self.ambiguous.append((what, retry))
            self.counts["ambiguous"] = self.counts.get("ambiguous", 0) + 1
            self.frozen.add(what)


class Client:
    """One app: a thread of writes against the gateway, recorded in the ledger."""

    def __init__(self, base_url: str, ledger: Ledger, number: int, seed: int):
        self.api = httpx.Client(base_url=base_url, timeout=10)
        self.ledger = ledger
        self.number = number
        self.random = random.Random(seed)
        self.mine: list[User] = []

    def run(self, until: float, max_requests: int) -> None:
        for _ in range(2):
            self._register()
        done = 0
        while time.monotonic() < until and done < max_requests:
            action = self.random.choices(
                [
                    self._create,
                    self._move,
                    self._delete,
                    self._follow,
                    self._unfollow,
                    self._track,
                    self._register,
                    self._tonight,
                ],
                weights=[30, 12, 8, 14, 5, 10, 2, 4],
            )[0]
            with contextlib.suppress(Ambiguous):  # recorded in the ledger by `attempt`
                action()
            done += 1

    # -- actions -------------------------------------------------------------------------

    def _register(self) -> None:
        user = User(
            f"c{self.ledger.run}{self.number}x{len(self.mine)}", public=len(self.mine) % 2 == 0
        )
        body = {
            "username": user.username,
            "email": f"{user.username}@example.com",
            "password": PASSWORD,
        }

        def register() -> None:
            response = self.write("POST", "/v1/users", json=body, fine=(200, 409))
            if response.status_code == 409:  # an earlier attempt made it
                return
            user.id = response.json()["id"]

        self.attempt(f"user {user.username}", register, lambda: self._login(user))
        self.mine.append(user)

    def _login(self, user: User) -> None:
        body = {"username": user.username, "password": PASSWORD}
        session = self.write("POST", "/v1/sessions", json=body).json()
        user.token, user.id = session["accessToken"], session["user"]["id"]
        if user.public:
            change = {"nightsVisibleTo": "everyone"}
            self.write("PATCH", "/v1/users/me", json=change, headers=user.auth)
        with self.ledger.lock:
            self.ledger.users[user.username] = user

    def _create(self) -> None:
        owner = self._someone()
        if owner is None:
            return
        nights = self._nights(owner)
        used = {n.day for n in nights if n.live} | {d for n in nights for d in n.days_held}
        free = [d for d in SLOTS if d not in used]
        if not free:
            return
        night = Night(
            owner.username,
            str(uuid.uuid4()),
            self.random.choice(free),
            self.random.choice(ZONES),
            self.random.choice([5.5, 6, 7, 7.5, 8, 9]),
        )

        with self.ledger.lock:  # its day is taken from now on, acknowledged or not
            self.ledger.nights[night.request_id] = night

        def create() -> None:
            body = {**night.body(), "quality": 3, "requestId": night.request_id}
            made = self.write("POST", "/v1/sleepEntries", json=body, headers=owner.auth).json()
            night.id, night.create_time = made["id"], made["createTime"]

        self.attempt(f"night {night.request_id}", create)

    def _move(self) -> None:
        """To another free day and zone (its sleep date and windows change)."""
        owner = self._someone()
        nights = [n for n in self._nights(owner)] if owner else []
        live = [n for n in nights if n.live and n.id and not self._frozen(n)]
        if not live:
            return
        night = self.random.choice(live)
        used = {n.day for n in nights if n.live} | {d for n in nights for d in n.days_held}
        free = [d for d in SLOTS if d not in used]
        if not free:
            return
        day, zone = self.random.choice(free), self.random.choice(ZONES)
        moved = Night(night.owner, night.request_id, day, zone, night.hours, night.id)

        def move() -> None:
            self.write(
                "PATCH",
                f"/v1/sleepEntries/{night.id}",
                json=moved.body(),
                params={"updateMask": "startTime,endTime,timeZone"},
                headers=owner.auth,
            )
            night.day, night.zone = day, zone
            night.days_held.clear()

        night.days_held.add(day)  # until settled, either day may be the one it is on
        self.attempt(f"night {night.request_id}", move)

    def _delete(self) -> None:
        owner = self._someone()
        nights = self._nights(owner) if owner else []
        live = [n for n in nights if n.live and n.id and not self._frozen(n)]
        if not live:
            return
        night = self.random.choice(live)

        def delete() -> None:
            # 404 on a retry: an attempt whose answer was lost deleted it.
            self.write(
                "DELETE", f"/v1/sleepEntries/{night.id}", headers=owner.auth, fine=(200, 404)
            )
            night.live = False

        self.attempt(f"night {night.request_id}", delete)

    def _tonight(self) -> None:
        """A night started live, then cancelled or left open: the audit finds it nowhere
        (an open night counts in no read model until it is finished)."""
        owner = self._someone()
        if owner is None:
            return
        request_id = str(uuid.uuid4())

        def start() -> None:
            # 400: one is open already, or (a retry) this one was cancelled meanwhile.
            body = {"requestId": request_id}
            started = self.write(
                "POST", "/v1/sleepEntries:start", json=body, headers=owner.auth, fine=(200, 400)
            )
            if started.status_code == 200 and self.random.random() < 0.7:
                night = started.json()["id"]
                self.write(
                    "POST",
                    f"/v1/sleepEntries/{night}:cancel",
                    json={},
                    headers=owner.auth,
                    fine=(200, 400, 404),
                )

        self.attempt(f"tonight {request_id}", start)

    def _follow(self, follow: bool = True) -> None:
        reader = self._someone()
        with self.ledger.lock:
            others = [u for u in self.ledger.users.values() if reader and u.id != reader.id]
        if not others:
            return
        author = self.random.choice(others)
        verb = "follow" if follow else "unfollow"
        pair = f"follow {reader.username} {author.username}"
        with self.ledger.lock:
            if pair in self.ledger.frozen:
                return

        def change() -> None:
            self.write("POST", f"/v1/users/{author.username}:{verb}", json={}, headers=reader.auth)
            with self.ledger.lock:
                self.ledger.follows[(reader.username, author.username)] = follow

        self.attempt(pair, change)

    def _unfollow(self) -> None:
        self._follow(False)

    def _track(self) -> None:
        now = _stamp(datetime.now(UTC))
        events = [
            {
                "eventId": str(uuid.uuid4()),
                "name": f"chaos_{self.ledger.run}",
                "eventTime": now,
                "page": "/feed",
                "anonymousId": f"device-{self.number}-{self.random.randrange(50)}",
            }
            for _ in range(self.random.randint(1, 5))
        ]

        def track() -> None:
            answer = self.write(
                "POST",
                "/v1/analytics/events:batchCreate",
                json={"events": events},
                headers={"User-Agent": "Mozilla/5.0"},
            )
            accepted = answer.json().get("acceptedCount", 0)
            with self.ledger.lock:
                self.ledger.tracked += accepted

        self.attempt(f"track {events[0]['eventId']}", track)

    # -- plumbing ------------------------------------------------------------------------

    def attempt(self, what: str, write, then=None) -> None:
        """Do `write` (and then `then`); if it stays ambiguous, record how to finish it."""

        def whole() -> None:
            write()
            if then:
                then()

        try:
            whole()
            self.ledger.count(what.split()[0])
        except Ambiguous:
            self.ledger.unsure(what, whole)
            raise

    def write(self, method: str, path: str, *, fine=(200,), **kwargs) -> httpx.Response:
        """One write, retried while the answer says to try again; Ambiguous after GIVE_UP."""
        deadline, pause = time.monotonic() + GIVE_UP, 0.1
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                response = self.api.request(method, path, **kwargs)
            except httpx.TransportError as error:
                last = repr(error)
            else:
                if response.status_code in fine:
                    return response
                if response.status_code not in (429, 500, 502, 503, 504):
                    raise AssertionError(
                        f"{method} {path}: {response.status_code} {response.text[:300]}"
                    )
                last = f"{response.status_code} {response.text[:120]}"
            time.sleep(pause)
            pause = min(pause * 2, 2.0)
        raise Ambiguous(f"{method} {path}: {last}")

    def _frozen(self, night: Night) -> bool:
        with self.ledger.lock:
            return f"night {night.request_id}" in self.ledger.frozen

    def _someone(self) -> User | None:
        known = [u for u in self.mine if u.token]
        return self.random.choice(known) if known else None

    def _nights(self, owner: User) -> list[Night]:
        with self.ledger.lock:
            return [n for n in self.ledger.nights.values() if n.owner == owner.username]


def settle(ledger: Ledger, rounds: int = 5) -> int:
    """Retry every ambiguous write until it is acknowledged; returns how many were."""
    finished = 0
    for _ in range(rounds):
        with ledger.lock:
            pending, ledger.ambiguous = ledger.ambiguous, []
        for what, retry in pending:
            try:
                retry()
                finished += 1
            except Ambiguous:
                with ledger.lock:
                    ledger.ambiguous.append((what, retry))
        if not ledger.ambiguous:
            break
    return finished


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _instant(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


class Reader:
    """A reader beside the writers: the admin's feed and a board, in turn, every
    `interval` seconds until `until`, each answer tallied by status (`tally`): what
    people reading saw while the faults struck. A read is not retried."""

    def __init__(self, base_url: str, user: User, interval: float = 0.2):
        self.paths = {"feed": "/v1/feed", "board": "/v1/leaderboards/total-duration/weekly"}
        self.api = httpx.Client(base_url=base_url, timeout=10)
        self.user = user
        self.interval = interval
        self.tally: dict[tuple[str, str], int] = {}

    def run(self, until: float) -> None:
        while time.monotonic() < until:
            for name, path in self.paths.items():
                try:
                    status = str(self.api.get(path, headers=self.user.auth).status_code)
                except httpx.HTTPError as error:
                    status = type(error).__name__
                self.tally[(name, status)] = self.tally.get((name, status), 0) + 1
            time.sleep(self.interval)

    @property
    def failed(self) -> int:
        return sum(n for (_name, status), n in self.tally.items() if status != "200")
