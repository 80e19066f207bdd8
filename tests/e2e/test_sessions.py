"""Sessions a person controls, over REST through Envoy: refresh tokens that rotate, a reused
one ending its session, log out, log out everywhere, a password change, and signing keys
that rotate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import jwt
import psycopg
from argon2 import PasswordHasher

from infra.mesh import routed_ports
from tests.e2e.conftest import PASSWORD, TEST_ENV
from tests.e2e.test_users_rest import error_of
from tests.support import eventually


def log_in(api: httpx.Client, account, password: str = PASSWORD) -> dict:
    response = api.post("/v1/sessions", json={"username": account.username, "password": password})
    assert response.status_code == 200, response.text
    return response.json()


def refresh(api: httpx.Client, token: str) -> httpx.Response:
    return api.post("/v1/sessions:refresh", json={"refreshToken": token})


def bearer(session: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {session['accessToken']}"}


def refused(response: httpx.Response) -> bool:
    return error_of(response)[:2] == (401, "UNAUTHENTICATED")


def test_a_refresh_token_works_once_and_a_reused_one_ends_its_session(api, new_account):
    me = new_account()
    first = log_in(api, me)
    expires = datetime.fromisoformat(first["expireTime"].replace("Z", "+00:00"))
    assert timedelta(minutes=14) < expires - datetime.now(UTC) <= timedelta(minutes=15)
    assert first["refreshToken"] and first["refreshExpireTime"] > first["expireTime"]

    second = refresh(api, first["refreshToken"])
    assert second.status_code == 200, second.text
    second = second.json()
    assert second["refreshToken"] != first["refreshToken"]
    assert second["user"]["username"] == me.username
    assert api.get("/v1/users/me", headers=bearer(second)).status_code == 200

    # The first token again: someone else holds a copy. The session ends for both.
    assert refused(refresh(api, first["refreshToken"]))
    assert refused(refresh(api, second["refreshToken"])), "the whole session ended"
    assert refused(refresh(api, "zr1_" + "x" * 43)) and refused(refresh(api, "nonsense"))
    assert refresh(api, log_in(api, me)["refreshToken"]).status_code == 200, "a new log-in"


def test_log_out_ends_this_session_and_log_out_everywhere_ends_them_all(api, new_account):
    me = new_account()
    phone, laptop, tablet = log_in(api, me), log_in(api, me), log_in(api, me)

    bad = api.delete("/v1/sessions/yesterday", headers=bearer(phone))
    assert error_of(bad)[:2] == (400, "INVALID_ARGUMENT") and "session" in error_of(bad)[2]
    assert api.delete("/v1/sessions/current", headers=bearer(phone)).status_code == 200
    assert api.delete("/v1/sessions/current", headers=bearer(phone)).status_code == 200
    assert refused(refresh(api, phone["refreshToken"]))
    laptop = refresh(api, laptop["refreshToken"]).json()  # the others go on

    everywhere = api.post("/v1/sessions:deleteAll", headers=bearer(laptop), json={})
    assert everywhere.status_code == 200, everywhere.text
    assert refused(refresh(api, laptop["refreshToken"]))
    assert refused(refresh(api, tablet["refreshToken"]))
    assert api.delete("/v1/sessions/current").status_code == 401


def test_a_password_change_ends_every_other_session(api, new_account):
    me = new_account()
    here, elsewhere = log_in(api, me), log_in(api, me)
    url = "/v1/users/me:changePassword"
    new_password = "a-new-secret-7"

    wrong = api.post(
        url,
        headers=bearer(here),
        json={"currentPassword": "not-it-42", "newPassword": new_password},
    )
    assert error_of(wrong)[:2] == (400, "INVALID_ARGUMENT")
    assert error_of(wrong)[2].startswith("current_password: ")
    weak = api.post(
        url, headers=bearer(here), json={"currentPassword": PASSWORD, "newPassword": "short"}
    )
    assert error_of(weak)[:2] == (400, "INVALID_ARGUMENT")
    assert error_of(weak)[2].startswith("new_password: ")
    elsewhere = refresh(api, elsewhere["refreshToken"]).json()  # refused changes: still open

    changed = api.post(
        url, headers=bearer(here), json={"currentPassword": PASSWORD, "newPassword": new_password}
    )
    assert changed.status_code == 200, changed.text
    assert refused(refresh(api, elsewhere["refreshToken"])), "every other session ended"
    assert refresh(api, here["refreshToken"]).status_code == 200, "this one goes on"
    old = api.post("/v1/sessions", json={"username": me.username, "password": PASSWORD})
    assert refused(old), "the old password is gone"
    log_in(api, me, new_password)


def test_a_hash_of_older_parameters_is_replaced_at_the_next_log_in(api, new_account, settings):
    """Hashes made before one lane became the rule (four lanes, argon2-cffi's default) still
    log in, and the right password replaces them with one of today's parameters."""
    me = new_account()
    with psycopg.connect(settings.postgres.dsn("zentry_user"), autocommit=True) as conn:

        def stored() -> str:
            query = "SELECT password_hash FROM users WHERE username = %s"
            return conn.execute(query, (me.username,)).fetchone()[0]

        assert ",p=1$" in stored(), "made with today's parameters"
        conn.execute(
            "UPDATE users SET password_hash = %s WHERE username = %s",
            (PasswordHasher(parallelism=4).hash(PASSWORD), me.username),
        )
        wrong = api.post("/v1/sessions", json={"username": me.username, "password": "nope-123"})
        assert refused(wrong) and ",p=4$" in stored(), "a wrong password changes nothing"
        log_in(api, me)
        assert ",p=1$" in stored(), "replaced at the log-in"
        log_in(api, me)


def test_signing_keys_rotate_and_tokens_of_either_key_keep_working(
    api, new_account, mesh, settings, keys
):
    """The mesh verifies with the current and the next public key (conftest.SigningKeys). The
    user instances switch to the next private key; tokens signed before and after both work
    everywhere through Envoy; then the instances switch back."""

    def swap_user_instances(private) -> None:
        old = [c for c in mesh.children if c.name.startswith("user-")]
        new = [
            mesh.start_service("user", 0, TEST_ENV | {"ZENTRY_JWT_PRIVATE_KEY_FILE": str(private)})
            for _ in old
        ]
        for child in new:
            mesh.wait_healthy(child)
        for child in old:
            mesh.stop(child)
        ports = {c.port for c in new}
        eventually(
            lambda: routed_ports(settings) == ports,
            timeout=30,
            what=f"Envoy routes log-ins to the user instances on {sorted(ports)} only",
        )

    before = new_account()
    kids = [k["kid"] for k in api.get("/.well-known/jwks.json").json()["keys"]]
    assert len(kids) == 2, "the JWKS lists the signing key and the next one"
    old_kid = jwt.get_unverified_header(before.token)["kid"]
    assert old_kid == kids[0]
    try:
        swap_user_instances(keys.next_private)
        after = new_account()
        assert jwt.get_unverified_header(after.token)["kid"] == kids[1]
        assert api.get("/.well-known/jwks.json").json()["keys"][0]["kid"] == kids[1]
        end = datetime.now(UTC).replace(microsecond=0) - timedelta(days=40)
        for account, day in ((before, 1), (after, 2)):
            assert api.get("/v1/users/me", headers=account.auth).status_code == 200
            night = {
                "startTime": (end + timedelta(days=day, hours=-7)).isoformat(),
                "endTime": (end + timedelta(days=day)).isoformat(),
            }
            created = api.post("/v1/sleepEntries", headers=account.auth, json=night)
            assert created.status_code == 200, created.text  # the sleep service verified it
            assert api.get("/v1/feed", headers=account.auth).status_code == 200
    finally:
        swap_user_instances(keys.private)
    assert api.get("/v1/users/me", headers=before.auth).status_code == 200
