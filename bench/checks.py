"""What the gateway's request check (gateway.body_check) costs a request, by body size.

The check's Lua runs here in LuaJIT, as in Envoy, on the bodies the API sees;
the figures include handing each request to the script (tests.lua_filter), so
they are an upper bound on what the check adds to a request at the gateway.
"""

from __future__ import annotations

import json
import time
import uuid

from gateway import body_check, descriptors
from gateway.config import DESCRIPTOR_SET
from tests.lua_filter import LuaFilter

AT = "2026-11-20T22:10:00Z"


def _events(count: int) -> str:
    return json.dumps(
        {
            "events": [
                {
                    "eventId": uuid.uuid4().hex,
                    "name": "page_view",
                    "eventTime": AT,
                    "anonymousId": uuid.uuid4().hex,
                    "page": "/feed",
                    "referrer": "https://duck.example/?q=sleep",
                    "properties": {"plan": "free", "theme": "dark"},
                }
                for _ in range(count)
            ]
        }
    )


CASES = [
    ("feed read (query only)", "GET", "/v1/feed?pageSize=20", None),
    (
        "sleep entry create",
        "POST",
        "/v1/sleepEntries",
        json.dumps(
            {
                "startTime": "2026-11-20T14:30:00Z",
                "endTime": AT,
                "quality": 4,
                "note": "woke once",
                "tags": ["travel"],
            }
        ),
    ),
    ("TrackEvents, 20 events", "POST", "/v1/analytics/events:batchCreate", _events(20)),
    ("TrackEvents, 500 events", "POST", "/v1/analytics/events:batchCreate", _events(500)),
]


def run(seconds: float = 1.0) -> list[dict]:
    descriptor_set = descriptors.load(DESCRIPTOR_SET)
    check = LuaFilter(body_check.lua(descriptor_set, descriptors.api_services(descriptor_set)))
    rows = []
    for name, method, path, body in CASES:
        assert check.request(method, path, body) is None, f"{name}: the check refused it"
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            check.request(method, path, body)
            count += 1
        each = (time.perf_counter() - started) / count
        rows.append(
            {
                "scenario": name,
                "body_bytes": len(body or ""),
                "us_per_request": round(each * 1e6, 1),
                "mb_per_s": round(len(body) / each / 1e6, 1) if body else None,
            }
        )
    return rows
