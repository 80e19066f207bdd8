"""A person's own nights, read from the sleep service on their behalf (for their export).

The user service keeps no nights: it pages through ListSleepEntries for `me`
with the caller's own token, through Consul like every call inside the mesh.
An export is whole or not given, so any failure is UNAVAILABLE (try again).
"""

from __future__ import annotations

import logging

import grpc
from zentry.sleep.v1 import sleep_entry_pb2, sleep_service_pb2, sleep_service_pb2_grpc

from services.kit.auth import Caller
from services.kit.discovery import Balancer, NoHealthyInstance
from services.kit.errors import Unavailable

_log = logging.getLogger(__name__)

PAGE = 100
#: Pages read at most: a night a day since 2000 is under a hundred of them.
MOST_PAGES = 1000
UNREADABLE = "Your nights cannot be read right now, so the export would be incomplete; try again."


class SleepNights:
    def __init__(self, sleep: Balancer, timeout: float = 5.0):
        self._sleep = sleep
        self._timeout = timeout

    async def of(self, caller: Caller) -> list[sleep_entry_pb2.SleepEntry]:
        """Every night of the caller, newest first, the open and abandoned ones too."""
        metadata = (("authorization", caller.authorization),)
        nights, token = [], ""
        try:
            await self._sleep.wait_ready(self._timeout)
            for _ in range(MOST_PAGES):
                stub = sleep_service_pb2_grpc.SleepServiceStub(self._sleep.channel())
                request = sleep_service_pb2.ListSleepEntriesRequest(
                    username="me", page_size=PAGE, page_token=token, show_unfinished=True
                )
                page = await stub.ListSleepEntries(
                    request, metadata=metadata, timeout=self._timeout
                )
                nights += page.sleep_entries
                token = page.next_page_token
                if not token:
                    return nights
        except (grpc.aio.AioRpcError, NoHealthyInstance, TimeoutError) as error:
            _log.warning("an export could not read the nights: %r", error)
            raise Unavailable(UNREADABLE) from None
        raise Unavailable(UNREADABLE)  # more pages than any person has: refuse, not cut
