"""Small kit pieces: error details and statuses, page tokens, settings."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import OperationalError

from services.kit import paging
from services.kit.boot import Assembly
from services.kit.errors import ErrorInterceptor, InvalidArgument, NotFound
from services.kit.settings import ConfigError, Env, ServiceSettings


def test_a_field_error_carries_a_bad_request_detail():
    error = InvalidArgument.field("email", "must be an email address")
    status = status_pb2.Status.FromString(error.status_details())
    assert status.code == 3 and status.message == "email: must be an email address"
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert bad_request.field_violations[0].field == "email"
    assert NotFound("nope").status_details() is None


def test_page_sizes():
    assert paging.page_size(0) == 50
    assert paging.page_size(7) == 7
    assert paging.page_size(10_000) == 100
    with pytest.raises(InvalidArgument, match="page_size"):
        paging.page_size(-1)


def test_page_tokens_round_trip_and_reject_foreign_ones():
    token = paging.encode_token({"t": "2026-11-22T00:00:00+00:00", "id": "abc"})
    assert paging.decode_token(token, {"t", "id"}) == {
        "t": "2026-11-22T00:00:00+00:00",
        "id": "abc",
    }
    assert paging.decode_token("", {"t"}) is None
    for bad in ["!!!", "e30", paging.encode_token({"other": 1})]:
        with pytest.raises(InvalidArgument, match="page_token"):
            paging.decode_token(bad, {"t", "id"})


def test_a_token_of_one_listing_is_refused_by_another():
    token = paging.encode_time_and_id(datetime(2026, 11, 22, tzinfo=UTC), str(UUID(int=7)), "ada|")
    assert paging.decode_time_and_id(token, "ada|") == (
        datetime(2026, 11, 22, tzinfo=UTC),
        str(UUID(int=7)),
    )
    with pytest.raises(InvalidArgument, match=r"^page_token: belongs to another list"):
        paging.decode_time_and_id(token, "bob|")
    with pytest.raises(InvalidArgument, match=r"^page_token: is not a token this list"):
        paging.decode_time_and_id(token)  # a listing's token in a list of none
    damaged = paging.encode_token({"t": "yesterday", "id": "7"}, "ada|")
    with pytest.raises(InvalidArgument, match=r"^page_token: is damaged"):
        paging.decode_time_and_id(damaged, "ada|")


def test_service_settings_defaults_and_errors(tmp_path):
    key = tmp_path / "public.pem"
    key.write_text("-----BEGIN PUBLIC KEY-----\n")
    env = Env({"ZENTRY_JWT_PUBLIC_KEY_FILE": str(key), "ZENTRY_USER_PORT": "0"})
    settings = ServiceSettings.load("user", 50051, env)
    assert settings.port == 0 and settings.postgres_dsn.endswith("@127.0.0.1:5432/zentry_user")
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    with pytest.raises(ConfigError, match="ZENTRY_JWT_PUBLIC_KEY_FILE must be set"):
        ServiceSettings.load("user", 50051, Env({}))
    with pytest.raises(ConfigError, match="ZENTRY_USER_PORT"):
        ServiceSettings.load(
            "user",
            50051,
            Env({"ZENTRY_JWT_PUBLIC_KEY_FILE": str(key), "ZENTRY_USER_PORT": "99999"}),
        )
    with pytest.raises(ConfigError, match="not a readable file"):
        ServiceSettings.load(
            "user", 50051, Env({"ZENTRY_JWT_PUBLIC_KEY_FILE": str(tmp_path / "x")})
        )


def test_roles_and_the_container_port(tmp_path):
    key = tmp_path / "public.pem"
    key.write_text("-----BEGIN PUBLIC KEY-----\n")
    base = {"ZENTRY_JWT_PUBLIC_KEY_FILE": str(key)}
    plain = ServiceSettings.load("sleep", 50052, Env(base))
    assert (plain.role, plain.port) == ("all", 50052)
    container = ServiceSettings.load("sleep", 50052, Env({**base, "ZENTRY_PORT": "8000"}))
    assert container.port == 8000, "ZENTRY_PORT: one port for every service in a container"
    own = Env({**base, "ZENTRY_PORT": "8000", "ZENTRY_SLEEP_PORT": "9000"})
    assert ServiceSettings.load("sleep", 50052, own).port == 9000, "the service's own wins"
    assert ServiceSettings.load("sleep", 1, Env({**base, "ZENTRY_ROLE": "consumer"})).role == (
        "consumer"
    )
    with pytest.raises(ConfigError, match="ZENTRY_ROLE must be one of all, api, consumer"):
        ServiceSettings.load("sleep", 50052, Env({**base, "ZENTRY_ROLE": "worker"}))


def test_a_role_picks_what_an_instance_runs():
    relay, consumer, sweeper = object(), object(), object()
    assembly = Assembly(
        services=["svc"],
        add_servicers=lambda s: None,
        workers=[relay],
        consumers=[consumer],
        timers=[sweeper],
    )
    assert assembly.for_role("all") is assembly
    api = assembly.for_role("api")
    assert (api.services, api.workers, api.consumers, api.timers) == (["svc"], [relay], [], [])
    alone = assembly.for_role("consumer")
    assert (alone.services, alone.workers, alone.consumers, alone.timers) == (
        [],
        [],
        [consumer],
        [sweeper],
    )
    with pytest.raises(ConfigError, match="consumes no topic"):
        Assembly(services=["svc"], add_servicers=lambda s: None).for_role("consumer")


class _Context:
    """What ErrorInterceptor uses of a grpc.aio context: abort records and raises."""

    aborted: tuple | None = None

    async def abort(self, code, message, trailing_metadata=()):
        self.aborted = (code, message)
        raise grpc.aio.AbortError()


@pytest.mark.parametrize(
    ("raised", "code"),
    [
        (OperationalError("SELECT 1", {}, Exception("connection refused")), "UNAVAILABLE"),
        (RedisConnectionError("Error 111 connecting to 127.0.0.1:6379"), "UNAVAILABLE"),
        (NotFound("No user named 'bob'."), "NOT_FOUND"),
        (ZeroDivisionError(), "INTERNAL"),
    ],
)
async def test_errors_become_statuses_and_outages_are_unavailable(raised, code):
    async def call(_request, _context):
        raise raised

    context = _Context()
    with pytest.raises(grpc.aio.AbortError):
        await ErrorInterceptor().around(call, None, context, "/zentry.test/Call")
    assert context.aborted[0] == getattr(grpc.StatusCode, code)
    if code == "UNAVAILABLE":
        assert "try again" in context.aborted[1]


def test_an_event_names_its_users_wherever_they_are():
    """services.kit.erasure skips events by the users they name."""
    from zentry.events.v1 import sleep_events_pb2 as sev
    from zentry.events.v1 import user_events_pb2 as uev

    from services.kit.erasure import users_named

    assert users_named(uev.FollowCreated(follower_id="a", followee_id="b")) == {"a", "b"}
    profile = uev.UserProfileUpdated(profile=uev.UserProfile(user_id="c", username="c"))
    assert users_named(profile) == {"c"}
    entry = sev.SleepEntryUpdated(
        entry=sev.SleepEntryState(user_id="d"), previous=sev.SleepEntryState(user_id="d")
    )
    assert users_named(entry) == {"d"}
    assert users_named(uev.UserDeleted(user_id="e")) == {"e"}
    assert users_named(uev.FollowCreated()) == set()
