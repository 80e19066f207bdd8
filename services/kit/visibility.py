"""Who may see a person's nights: the rule every service applies, pure.

An owner's `nights_visible_to` is one of AUDIENCES:

- `everyone`: every signed-in account;
- `followers` (the default for new accounts, and for profiles an event
  carried before the setting existed): the accounts that follow the owner. A
  follow request still waiting for the owner's approval is not a follow;
- `onlyMe`: nobody else.

The owner always sees their own nights. An admin sees no more than anyone
else: roles run the product, they do not open people's health data.

The same answer decides who sees an owner's followers and following lists.
The global boards rank only those whose nights everyone may see, or who chose
`show_on_global_boards`: a standing shows a window's totals (on a daily board,
that day's sleep), never a night's times, notes or tags.
"""

from __future__ import annotations

from services.kit.errors import InvalidArgument

EVERYONE, FOLLOWERS, ONLY_ME = "everyone", "followers", "onlyMe"
AUDIENCES = (EVERYONE, FOLLOWERS, ONLY_ME)
DEFAULT = FOLLOWERS


def audience(value: str) -> str:
    """A stored or carried setting: empty (an older profile) means the default."""
    return value if value in AUDIENCES else DEFAULT


def check_audience(value: str, field: str = "nights_visible_to") -> str:
    """A setting a person asks for; InvalidArgument naming `field` unless it is one."""
    if value not in AUDIENCES:
        raise InvalidArgument.field(field, f"must be one of {', '.join(AUDIENCES)}")
    return value


def may_see(viewer_id: str, owner_id: str, nights_visible_to: str, follows: bool) -> bool:
    """Whether `viewer_id` may see `owner_id`'s nights; `follows`: the viewer follows the
    owner (an approved follow)."""
    if viewer_id == owner_id:
        return True
    setting = audience(nights_visible_to)
    return setting == EVERYONE or (setting == FOLLOWERS and follows)


def on_global_boards(nights_visible_to: str, show_on_global_boards: bool) -> bool:
    """Whether an account is ranked on the global boards (every signed-in account sees them)."""
    return audience(nights_visible_to) == EVERYONE or show_on_global_boards
