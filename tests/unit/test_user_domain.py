"""The user service's rules, without any server."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.kit.errors import InvalidArgument
from services.user import domain
from services.user.domain import CelebrityRule


@pytest.mark.parametrize("name", ["abc", "Ada_Lovelace", "x" * 30, "_1_"])
def test_good_usernames(name):
    assert domain.check_username(name) == name


@pytest.mark.parametrize("name", ["", "ab", "x" * 31, "has space", "dash-ed", "ümlaut", "me"])
def test_bad_usernames(name):
    with pytest.raises(InvalidArgument, match="username"):
        domain.check_username(name)


def test_usernames_compare_ignoring_case():
    assert domain.username_key("Ada_L") == domain.username_key("ada_l")


@pytest.mark.parametrize("email", ["ada@example.com", "a.b+c@sub.example.org"])
def test_good_emails(email):
    assert domain.check_email(email) == email


def test_email_domain_is_lowercased_and_local_part_kept():
    assert domain.check_email(" Ada@Example.COM ") == "Ada@example.com"


@pytest.mark.parametrize(
    "email",
    [
        "",
        "ada",
        "ada@",
        "@example.com",
        "ada@example",
        "a b@c.d",
        "ada@@example.com",
        "x" * 250 + "@e.com",
    ],
)
def test_bad_emails(email):
    with pytest.raises(InvalidArgument, match="email"):
        domain.check_email(email)


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short1!", "10 to 128"),
        ("x1" * 65, "10 to 128"),
        ("onlyletters", "mix"),
        ("1234567890", "mix"),
        ("my-ada_l-pass1", "username"),
    ],
)
def test_password_policy(password, reason):
    with pytest.raises(InvalidArgument, match=reason):
        domain.check_password(password, "Ada_L")


def test_a_good_password():
    assert domain.check_password("sleep-well-42", "ada") == "sleep-well-42"


def test_time_zones():
    assert domain.check_time_zone("") == "UTC"
    assert domain.check_time_zone("America/St_Johns") == "America/St_Johns"
    for bad in ["Mars/Base", "../../etc/passwd", "Europe/"]:
        with pytest.raises(InvalidArgument, match="time_zone"):
            domain.check_time_zone(bad)


def test_sleep_goal_bounds():
    assert domain.check_sleep_goal(timedelta(hours=7, minutes=30)) == timedelta(hours=7, minutes=30)
    for bad in [timedelta(minutes=59), timedelta(hours=16, seconds=1)]:
        with pytest.raises(InvalidArgument, match="sleep_goal"):
            domain.check_sleep_goal(bad)


def test_display_name_and_bio_limits():
    assert domain.check_display_name("  Ada  ") == "Ada"
    with pytest.raises(InvalidArgument):
        domain.check_display_name("x" * 65)
    with pytest.raises(InvalidArgument):
        domain.check_display_name("bell\x07")
    assert domain.check_bio("two\nlines") == "two\nlines"
    with pytest.raises(InvalidArgument):
        domain.check_bio("x" * 281)


def test_update_mask():
    assert domain.check_update_mask([], {"bio", "username"}) == ["bio"]
    assert domain.check_update_mask(["bio", "bio", "time_zone"], set()) == ["bio", "time_zone"]
    with pytest.raises(InvalidArgument, match="cannot be changed"):
        domain.check_update_mask(["email"], set())
    with pytest.raises(InvalidArgument, match="unknown field"):
        domain.check_update_mask(["colour"], set())
    # Found by trying: a body whose fields were all misspelt changed nothing and answered 200.
    with pytest.raises(InvalidArgument, match=r"^update_mask: names no field to change"):
        domain.check_update_mask([], {"username"})


def test_celebrity_hysteresis():
    rule = CelebrityRule(promote_at=100, demote_below=90)
    assert rule.status(False, 99) is False
    assert rule.status(False, 100) is True
    assert rule.status(True, 95) is True, "inside the band: no change"
    assert rule.status(False, 95) is False, "inside the band: no change"
    assert rule.status(True, 89) is False
    counts = [99, 100, 99, 100, 95, 100, 89, 90, 99]
    states, celebrity = [], False
    for count in counts:
        celebrity = rule.status(celebrity, count)
        states.append(celebrity)
    assert states == [False, True, True, True, True, True, False, False, False]
    with pytest.raises(ValueError):
        CelebrityRule(promote_at=10, demote_below=11)
