"""The gateway's Lua filters run outside Envoy, in LuaJIT (lupa), as Envoy runs them.

`LuaFilter` gives a script the part of Envoy's stream handle it uses: request
headers (get, replace), the buffered body (length, getBytes) and respond.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from lupa import luajit21

HANDLE = """
function(method, path, body)
  local headers = {[":method"] = method, [":path"] = path}
  local handle, answer = {}, {}
  local chunk = body and {
    length = function(self) return #body end,
    getBytes = function(self, start, count) return string.sub(body, start + 1, start + count) end,
  }
  local header_map = {
    get = function(self, name) return headers[name] end,
    replace = function(self, name, value) headers[name] = value end,
  }
  function handle:headers() return header_map end
  function handle:body() return chunk end
  function handle:respond(reply, text) answer.status = reply[":status"]; answer.body = text end
  return handle, answer
end
"""


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict


class LuaFilter:
    def __init__(self, source: str):
        self._lua = luajit21.LuaRuntime()
        self._lua.execute(source)
        self._handle = self._lua.eval(HANDLE)
        self._on_request = self._lua.globals().envoy_on_request

    def request(self, method: str, path: str, body: str | bytes | None = None) -> Answer | None:
        """What the filter answers itself, or None when it lets the request through."""
        text = body.encode() if isinstance(body, str) else body
        handle, answer = self._handle(method, path, text)
        self._on_request(handle)
        if answer.status is None:
            return None
        return Answer(int(answer.status), json.loads(answer.body))
