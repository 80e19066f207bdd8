"""Who may see whose nights (services.kit.visibility), without any server."""

from __future__ import annotations

import pytest

from services.kit import visibility
from services.kit.errors import InvalidArgument

OWNER, VIEWER = "owner-id", "viewer-id"


@pytest.mark.parametrize(
    ("setting", "follows", "seen"),
    [
        ("everyone", False, True),
        ("everyone", True, True),
        ("followers", False, False),
        ("followers", True, True),
        ("onlyMe", False, False),
        ("onlyMe", True, False),
        ("", False, False),  # an older profile: the default, followers
        ("", True, True),
    ],
)
def test_who_sees_an_owners_nights(setting, follows, seen):
    assert visibility.may_see(VIEWER, OWNER, setting, follows) is seen


@pytest.mark.parametrize("setting", ["everyone", "followers", "onlyMe", ""])
def test_the_owner_always_sees_their_own(setting):
    assert visibility.may_see(OWNER, OWNER, setting, False)


@pytest.mark.parametrize(
    ("setting", "opted_in", "ranked"),
    [
        ("everyone", False, True),
        ("followers", False, False),
        ("followers", True, True),
        ("onlyMe", False, False),
        ("onlyMe", True, True),
        ("", False, False),
    ],
)
def test_who_is_ranked_on_the_global_boards(setting, opted_in, ranked):
    assert visibility.on_global_boards(setting, opted_in) is ranked


def test_a_setting_that_is_not_one_names_the_field():
    with pytest.raises(InvalidArgument) as refused:
        visibility.check_audience("friends")
    assert "nights_visible_to" in str(refused.value)
    assert visibility.check_audience("onlyMe") == "onlyMe"
    assert visibility.audience("") == visibility.DEFAULT == "followers"
