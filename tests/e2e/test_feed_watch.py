"""Watching a feed over REST, through Envoy: server-sent events that survive the SIGKILL of
the feed instance serving them, resumed from the last cursor with nothing lost or repeated."""

from __future__ import annotations

import json
import queue
import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx

from infra.mesh import active_requests
from tests.e2e.conftest import TEST_ENV
from tests.e2e.test_feed_rest import feed_ids, follow
from tests.support import eventually

END = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)


class Stream:
    """GET /v1/feed:watch in a thread of its own: each event's message, in order, on a queue
    (None once the stream ends, however it ends)."""

    def __init__(self, gateway: str, account, cursor: str = ""):
        self.messages: queue.Queue = queue.Queue()
        self.status = 0
        self.content_type = ""
        params = {"cursor": cursor} if cursor else {}
        self._client = httpx.Client(base_url=gateway, timeout=httpx.Timeout(5, read=60))
        self._request = self._client.build_request(
            "GET", "/v1/feed:watch", params=params, headers=account.auth
        )
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        assert self._opened.wait(10), "the stream did not open"

    def _read(self) -> None:
        try:
            response = self._client.send(self._request, stream=True)
            self.status = response.status_code
            self.content_type = response.headers.get("content-type", "")
            self._opened.set()
            for line in response.iter_lines():
                if line.startswith("data: "):
                    self.messages.put(json.loads(line[len("data: ") :]))
        except httpx.HTTPError:
            pass
        finally:
            self._opened.set()
            self.messages.put(None)

    def next(self, timeout: float = 20, skip_heartbeats: bool = True) -> dict | None:
        while True:
            message = self.messages.get(timeout=timeout)
            if message is None or not (skip_heartbeats and "heartbeat" in message):
                return message

    def close(self) -> None:
        self._client.close()


def record(api, account, days_before: int) -> str:
    """A night of seven hours ending `days_before` days before END."""
    end = END - timedelta(days=days_before)
    body = {
        "startTime": (end - timedelta(hours=7)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "endTime": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    response = api.post("/v1/sleepEntries", headers=account.auth, json=body)
    assert response.status_code == 200, response.text
    return response.json()["id"]


def test_a_watched_feed_survives_the_sigkill_of_its_instance(
    api, gateway, new_account, mesh, settings
):
    author, reader = new_account(displayName="Night Owl"), new_account()
    follow(api, reader, author)
    earlier = record(api, author, 10)
    eventually(
        lambda: feed_ids(api, reader) == [earlier],
        timeout=20,
        what="the feed knows the reader follows the author",
    )
    stream = Stream(gateway, reader)
    try:
        assert stream.status == 200 and stream.content_type.startswith("text/event-stream")
        first = record(api, author, 9)
        got = stream.next()
        assert "item" in got, got
        assert got["item"]["entry"]["id"] == first
        assert got["item"]["author"]["displayName"] == "Night Owl"
        cursor = got["cursor"]

        # The instance holding the stream dies mid-stream; nights are recorded meanwhile.
        serving = {port for port, n in active_requests(settings, "feed").items() if n}
        [victim] = [c for c in mesh.children if c.port in serving and c.alive()]
        mesh.stop(victim, signal.SIGKILL)
        assert stream.next(timeout=10) is None, "the stream ends with its instance"
        missed = [record(api, author, 8 - n) for n in range(3)]
        deleted = api.delete(f"/v1/sleepEntries/{missed[0]}", headers=author.auth)
        assert deleted.status_code == 200, deleted.text
        eventually(
            lambda: feed_ids(api, reader)[:2] == [missed[2], missed[1]],
            timeout=20,
            what="the feed has the nights recorded meanwhile, and not the one deleted",
        )
    finally:
        stream.close()

    # Watched again from the last cursor: another instance goes on where it stopped.
    resumed = Stream(gateway, reader, cursor)
    try:
        seen = []
        while len(seen) < 3:
            message = resumed.next()
            assert message is not None and "reset" not in message, message
            seen.append(
                ("removed", message["removedEntryId"])
                if "removedEntryId" in message
                else ("item", message["item"]["entry"]["id"])
            )
        # Each as it stands now: the one deleted meanwhile only as its removal.
        assert set(seen) == {("item", missed[1]), ("item", missed[2]), ("removed", missed[0])}
        later = record(api, author, 1)
        assert resumed.next()["item"]["entry"]["id"] == later
        time.sleep(1)
        rest = [resumed.messages.get_nowait() for _ in range(resumed.messages.qsize())]
        assert all("heartbeat" in m for m in rest), f"nothing more, nothing twice: {rest}"
    finally:
        resumed.close()
        replacement = mesh.start_service("feed", None, TEST_ENV, role=victim.role)
        mesh.wait_serving([replacement])


def test_watching_needs_a_token_and_a_cursor_of_ones_own(api, gateway, new_account):
    response = api.get("/v1/feed:watch")
    assert response.status_code == 401
    reader, other = new_account(), new_account()
    bad = api.get("/v1/feed:watch", params={"cursor": "not-a-cursor"}, headers=reader.auth)
    assert bad.status_code == 400, bad.text
    assert bad.json()["details"][0]["fieldViolations"][0]["field"] == "cursor"
    heartbeat_stream = Stream(gateway, other)
    try:
        assert heartbeat_stream.status == 200
    finally:
        heartbeat_stream.close()
