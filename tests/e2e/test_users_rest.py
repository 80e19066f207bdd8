"""The user REST surface through Envoy: happy paths, and every bad input with no side effect."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from zentry.user.v1 import user_service_pb2, user_service_pb2_grpc

from tests.e2e.conftest import PASSWORD, register
from tests.support import unique


def error_of(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["status"], body["message"]


def test_register_log_in_and_get_me(api, new_account):
    account = new_account(displayName="Ada L.", timeZone="Asia/Tokyo")
    me = api.get("/v1/users/me", headers=account.auth)
    assert me.status_code == 200
    body = me.json()
    assert body["username"] == account.username
    assert body["email"] == account.email
    assert body["displayName"] == "Ada L."
    assert body["timeZone"] == "Asia/Tokyo"
    assert body["sleepGoal"] == "28800s"
    assert body["followerCount"] == 0 and body["celebrity"] is False


def test_log_in_by_email_any_case_gives_a_token_with_expiry(api, new_account):
    account = new_account()
    response = api.post(
        "/v1/sessions", json={"username": account.email.upper(), "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user"]["username"] == account.username
    assert body["expireTime"].endswith("Z") and body["accessToken"].count(".") == 2


def test_other_profiles_hide_the_email(api, new_account):
    me, other = new_account(), new_account()
    response = api.get(f"/v1/users/{other.username.upper()}", headers=me.auth)
    assert response.status_code == 200
    assert response.json()["username"] == other.username
    assert response.json()["email"] == ""


def test_update_profile_with_update_mask(api, new_account):
    account = new_account()
    response = api.patch(
        "/v1/users/me",
        params={"updateMask": "displayName,sleepGoal"},
        headers=account.auth,
        json={"displayName": "Night Owl", "sleepGoal": "27000s", "bio": "ignored: not in the mask"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["displayName"], body["sleepGoal"], body["bio"]) == ("Night Owl", "27000s", "")


def test_update_without_mask_changes_the_fields_given(api, new_account):
    account = new_account()
    response = api.patch("/v1/users/me", headers=account.auth, json={"bio": "zzz"})
    assert response.status_code == 200
    assert response.json()["bio"] == "zzz"


def test_bad_profile_updates_are_400_and_change_nothing(api, new_account):
    account = new_account(timeZone="Europe/Paris")
    cases = [
        ({"timeZone": "Mars/Olympus"}, None, "time_zone"),
        ({"sleepGoal": "600s"}, None, "sleep_goal"),
        ({"displayName": "x" * 65}, None, "display_name"),
        ({"username": "someone_else"}, "username", "cannot be changed"),
        ({"bio": "a"}, "favouriteColour", "unknown field"),
    ]
    for body, mask, fragment in cases:
        params = {"updateMask": mask} if mask else {}
        response = api.patch("/v1/users/me", params=params, headers=account.auth, json=body)
        status, code, message = error_of(response)
        assert (status, code) == (400, "INVALID_ARGUMENT"), response.text
        assert fragment in message
    me = api.get("/v1/users/me", headers=account.auth).json()
    assert (me["timeZone"], me["sleepGoal"], me["bio"]) == ("Europe/Paris", "28800s", "")


def test_changing_someone_elses_profile_is_403(api, new_account):
    me, other = new_account(), new_account()
    response = api.patch(f"/v1/users/{other.username}", headers=me.auth, json={"bio": "hacked"})
    assert error_of(response)[:2] == (403, "PERMISSION_DENIED")
    assert api.get(f"/v1/users/{other.username}", headers=me.auth).json()["bio"] == ""


def test_follow_unfollow_and_counts(api, new_account):
    reader, author = new_account(), new_account()
    followed = api.post(f"/v1/users/{author.username}:follow", headers=reader.auth, json={})
    assert followed.status_code == 200
    assert followed.json()["user"]["followerCount"] == 1
    again = api.post(f"/v1/users/{author.username}:follow", headers=reader.auth, json={})
    assert again.json()["user"]["followerCount"] == 1, "following twice is idempotent"
    assert api.get("/v1/users/me", headers=reader.auth).json()["followingCount"] == 1

    unfollowed = api.post(f"/v1/users/{author.username}:unfollow", headers=reader.auth, json={})
    assert unfollowed.json()["user"]["followerCount"] == 0
    again = api.post(f"/v1/users/{author.username}:unfollow", headers=reader.auth, json={})
    assert again.status_code == 200 and again.json()["user"]["followerCount"] == 0
    assert api.get("/v1/users/me", headers=reader.auth).json()["followingCount"] == 0


def test_one_account_follows_at_most_the_cap(api, new_account):
    """The test mesh caps follows at 6 (ZENTRY_MAX_FOLLOWING; 5000 by default)."""
    reader = new_account()
    authors = [register(api).json()["username"] for _ in range(7)]

    def follow(name: str) -> httpx.Response:
        return api.post(f"/v1/users/{name}:follow", headers=reader.auth, json={})

    assert [follow(name).status_code for name in authors[:6]] == [200] * 6
    status, code, message = error_of(follow(authors[6]))
    assert (status, code) == (400, "FAILED_PRECONDITION")
    assert message == (
        "You follow or have asked to follow 6 accounts, the most one account may; "
        "unfollow some, or withdraw requests, to follow others."
    )
    assert follow(authors[0]).status_code == 200, "following again at the cap changes nothing"
    assert api.get("/v1/users/me", headers=reader.auth).json()["followingCount"] == 6
    assert api.post(f"/v1/users/{authors[0]}:unfollow", headers=reader.auth).status_code == 200
    assert follow(authors[6]).status_code == 200


def test_followers_and_following_paginate_without_gaps_or_repeats(api, new_account):
    author = new_account()
    readers = [new_account() for _ in range(5)]
    for reader in readers:
        assert (
            api.post(f"/v1/users/{author.username}:follow", headers=reader.auth).status_code == 200
        )
    seen, token, pages = [], "", 0
    while True:
        params = {"pageSize": 2, **({"pageToken": token} if token else {})}
        page = api.get(f"/v1/users/{author.username}/followers", params=params, headers=author.auth)
        assert page.status_code == 200, page.text
        body = page.json()
        seen += [u["username"] for u in body["users"]]
        pages += 1
        token = body["nextPageToken"]
        if not token:
            break
    assert pages == 3
    assert seen == [r.username for r in reversed(readers)], "newest follower first, each once"
    following = api.get("/v1/users/me/following", headers=readers[0].auth).json()
    assert [u["username"] for u in following["users"]] == [author.username]


def test_celebrity_flag_follows_the_threshold_with_hysteresis(api, new_account):
    author = new_account()
    readers = [new_account() for _ in range(3)]  # the test mesh promotes at 3, demotes below 2

    def celebrity() -> bool:
        return api.get(f"/v1/users/{author.username}", headers=author.auth).json()["celebrity"]

    for reader in readers[:2]:
        api.post(f"/v1/users/{author.username}:follow", headers=reader.auth)
    assert not celebrity()
    api.post(f"/v1/users/{author.username}:follow", headers=readers[2].auth)
    assert celebrity()
    api.post(f"/v1/users/{author.username}:unfollow", headers=readers[2].auth)
    assert celebrity(), "2 followers is inside the hysteresis band: still a celebrity"
    api.post(f"/v1/users/{author.username}:unfollow", headers=readers[1].auth)
    assert not celebrity()


def test_invalid_registrations_are_400_and_create_nothing(api, new_account):
    me = new_account()
    cases = [
        ({"email": "not-an-email"}, "email"),
        ({"password": "short1"}, "password"),
        ({"password": "onlyletterslong"}, "password"),
        ({"username": "ab"}, "username"),
        ({"username": "has space"}, "username"),
        ({"timeZone": "Nowhere/Special"}, "time_zone"),
    ]
    for fields, field in cases:
        name = fields.get("username", unique("bad").replace("-", "_")[:20])
        response = register(api, **{"username": name, **fields})
        status, code, message = error_of(response)
        assert (status, code) == (400, "INVALID_ARGUMENT"), response.text
        assert message.startswith(field)
        violations = response.json()["details"][0]["fieldViolations"]
        assert violations[0]["field"] == field
        if " " not in name and len(name) >= 3:
            missing = api.get(f"/v1/users/{name}", headers=me.auth)
            assert missing.status_code == 404, f"{fields} created {name}"


def test_duplicate_username_or_email_is_409_and_keeps_the_first(api, new_account):
    first = new_account()
    clash_name = register(api, username=first.username.upper(), email="other@example.com")
    assert error_of(clash_name)[:2] == (409, "ALREADY_EXISTS")
    clash_email = register(api, email=first.email.upper())
    assert error_of(clash_email)[:2] == (409, "ALREADY_EXISTS")
    login = api.post("/v1/sessions", json={"username": first.username, "password": PASSWORD})
    assert login.status_code == 200 and login.json()["user"]["email"] == first.email


def test_malformed_json_is_400(api):
    response = api.post(
        "/v1/users", content=b'{"username": ', headers={"content-type": "application/json"}
    )
    assert error_of(response)[:2] == (400, "INVALID_ARGUMENT")


def test_unknown_path_and_unknown_query_parameter(api, new_account):
    account = new_account()
    assert error_of(api.get("/v1/nothing-here", headers=account.auth))[:2] == (404, "NOT_FOUND")
    response = api.get("/v1/users/me", params={"colour": "blue"}, headers=account.auth)
    assert error_of(response)[:2] == (400, "INVALID_ARGUMENT")


def test_follow_yourself_is_400_and_unknown_user_is_404(api, new_account):
    account = new_account()
    response = api.post(f"/v1/users/{account.username}:follow", headers=account.auth)
    assert error_of(response)[:2] == (400, "INVALID_ARGUMENT")
    assert "yourself" in error_of(response)[2]
    response = api.post("/v1/users/nobody_at_all_x:follow", headers=account.auth)
    assert error_of(response)[:2] == (404, "NOT_FOUND")
    me = api.get("/v1/users/me", headers=account.auth).json()
    assert (me["followingCount"], me["followerCount"]) == (0, 0)


def test_wrong_password_and_unknown_user_get_the_same_401(api, new_account):
    account = new_account()
    wrong = api.post("/v1/sessions", json={"username": account.username, "password": "nope-nope-1"})
    unknown = api.post(
        "/v1/sessions", json={"username": unique("ghost"), "password": "nope-nope-1"}
    )
    assert error_of(wrong) == error_of(unknown)
    assert error_of(wrong)[:2] == (401, "UNAUTHENTICATED")


def test_a_burst_of_failed_log_ins_is_refused_with_429(api, new_account):
    account = new_account()
    for _ in range(5):
        api.post("/v1/sessions", json={"username": account.username, "password": "wrong-pass-1"})
    locked = api.post("/v1/sessions", json={"username": account.username, "password": PASSWORD})
    status, code, message = error_of(locked)
    assert (status, code) == (429, "RESOURCE_EXHAUSTED")
    assert "try again" in message
    other = new_account()  # other accounts are not affected
    assert (
        api.post(
            "/v1/sessions", json={"username": other.username, "password": PASSWORD}
        ).status_code
        == 200
    )


def test_concurrent_guesses_get_only_the_allowed_checks(api, new_account):
    """Counted before the password is checked: 20 guesses at once, 5 checked (the test
    mesh allows 5), whichever name each one typed."""
    account = new_account()
    names = [account.username, account.email.upper()] * 10

    def guess(name: str) -> int:
        body = {"username": name, "password": "wrong-pass-1"}
        return api.post("/v1/sessions", json=body).status_code

    with ThreadPoolExecutor(20) as pool:
        statuses = sorted(pool.map(guess, names))
    assert statuses == [401] * 5 + [429] * 15


def test_a_guesser_locks_out_only_their_own_address(api, new_account, gateway):
    account = new_account()
    for _ in range(6):
        api.post("/v1/sessions", json={"username": account.username, "password": "wrong-pass-1"})
    body = {"username": account.username, "password": PASSWORD}
    assert error_of(api.post("/v1/sessions", json=body))[:2] == (429, "RESOURCE_EXHAUSTED")
    elsewhere = httpx.HTTPTransport(local_address="127.0.0.2")  # the owner, at home
    with httpx.Client(base_url=gateway, transport=elsewhere, timeout=20) as owner:
        assert owner.post("/v1/sessions", json=body).status_code == 200


def test_a_direct_call_cannot_pass_for_the_gateway_with_its_headers(api, new_account, mesh):
    """Found by reading: a service believed x-zentry-client-address from anyone who reached
    its port. Six wrong guesses sent straight to a user instance, each claiming another
    address, are counted against the sender's own address (this machine's)."""
    account = new_account()
    port = next(c.port for c in mesh.children if c.name.startswith("user-") and c.alive())
    with mesh.channel(port, "user") as channel:
        stub = user_service_pb2_grpc.UserServiceStub(channel)
        for n in range(6):
            with pytest.raises(grpc.RpcError):
                stub.CreateSession(
                    user_service_pb2.CreateSessionRequest(
                        username=account.username, password="wrong-pass-1"
                    ),
                    metadata=(("x-zentry-client-address", f"198.51.100.{n}"),),
                    timeout=10,
                )
    body = {"username": account.username, "password": PASSWORD}
    assert error_of(api.post("/v1/sessions", json=body))[:2] == (429, "RESOURCE_EXHAUSTED")


def test_missing_malformed_expired_and_forged_tokens_are_401(api, new_account, settings):
    account = new_account()
    before = api.get("/v1/users/me", headers=account.auth).json()
    now = int(time.time())
    claims = {"iss": "zentry", "aud": "zentry-api", "sub": account.id, "username": account.username}
    private_key = (settings.run_dir / "secrets" / "jwt-private.pem").read_bytes()
    expired = jwt.encode({**claims, "iat": now - 7200, "exp": now - 120}, private_key, "RS256")
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode({**claims, "iat": now, "exp": now + 600}, stranger, "RS256")
    for headers in [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer not.a.jwt"},
        {"Authorization": f"Bearer {expired}"},
        {"Authorization": f"Bearer {forged}"},
    ]:
        response = api.patch("/v1/users/me", headers=headers, json={"bio": "changed"})
        assert error_of(response)[:2] == (401, "UNAUTHENTICATED"), (headers, response.text)
    assert api.get("/v1/users/me", headers=account.auth).json() == before


def test_bodies_over_the_limit_are_refused(api):
    response = api.post("/v1/users", json={"username": "big_body", "bio": "x" * (2 * 1024 * 1024)})
    assert response.status_code == 413


def test_healthz_is_answered_by_envoy_without_a_token(api):
    response = api.get("/healthz")
    assert response.status_code == 200
    assert response.headers["x-envoy-upstream-healthchecked-cluster"] == "zentry-gateway"


def test_cors_preflight_from_an_allowed_origin(api):
    response = api.options(
        "/v1/users",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"


def test_jwks_is_public_and_lists_the_signing_key(api, new_account):
    keys = api.get("/.well-known/jwks.json").json()["keys"]
    token = new_account().token
    assert jwt.get_unverified_header(token)["kid"] in {k["kid"] for k in keys}
    assert all(k["kty"] == "RSA" and k["alg"] == "RS256" for k in keys)


def test_a_request_id_is_unique_per_call(api):
    ids = {
        api.get("/.well-known/jwks.json").headers.get("x-request-id", str(uuid.uuid4()))
        for _ in range(2)
    }
    assert len(ids) == 2
