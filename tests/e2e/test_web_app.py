"""The web app in a real headless Chromium (Debian's, driven by Playwright), through the
gateway on the same origin as the REST API it calls.

Each scenario takes a screenshot of what it ends on, into .run/screenshots/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import httpx
import psycopg
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from infra.config import Settings
from tests.e2e.conftest import PASSWORD
from tests.e2e.test_analytics_rest import grant_admin
from tests.support import unique

PHONE = {"width": 390, "height": 844}
VISITS = 3  # of the leaderboards, by the test of the app's own analytics


@pytest.fixture(scope="module")
def browser(settings: Settings) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=settings.chromium, args=["--no-sandbox"]
        )
        yield chromium
        chromium.close()


def person(browser: Browser) -> str:
    """The user agent of this Chromium as a person runs it: a headless browser's says
    "HeadlessChrome", and product analytics rightly drops such a visitor's events."""
    return (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        f"Chrome/{browser.version} Safari/537.36"
    )


@pytest.fixture
def page(browser: Browser, gateway: str) -> Iterator[Page]:
    context = browser.new_context(
        base_url=gateway, viewport={"width": 1280, "height": 900}, user_agent=person(browser)
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    trouble = page.locator("#trouble").all_inner_texts()
    context.close()
    assert not errors, f"the page's script failed: {errors}"
    assert not trouble, f"the page said a call failed: {trouble}"


def shot(page: Page, settings: Settings, name: str) -> None:
    folder = settings.run_dir / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=folder / f"{name}.png", full_page=True)


def until_shown(page: Page, place, text: str, again, tries: int = 30) -> None:
    """What a consumer applies reaches a page a moment later: `again()` (a refresh, as a
    person would) until `place` shows `text`, then the assertion that it does."""
    for _ in range(tries):
        if text in place.inner_text():
            break
        again()
        page.wait_for_timeout(500)
    expect(place).to_contain_text(text)


def sign_up(page: Page) -> str:
    username = unique("web").replace("-", "_")[:30]
    page.goto("/#/signup")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Email").fill(f"{username}@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="My nights", level=1)).to_be_visible()
    return username


def record_night(page: Page, start: datetime, end: datetime) -> None:
    """Through the "last night" form, times as the browser's clock shows them (UTC here)."""
    form = page.get_by_role("form", name="Last night")
    form.get_by_label("Fell asleep").fill(start.strftime("%Y-%m-%dT%H:%M"))
    form.get_by_label("Woke up").fill(end.strftime("%Y-%m-%dT%H:%M"))
    form.get_by_role("button", name="Record the night").click()


def test_the_app_is_served_from_the_gateway_with_a_strict_policy(gateway: str):
    page = httpx.get(f"{gateway}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert "http" not in policy, "nothing from another origin, no CDN"
    assert '<script defer src="/app.js"></script>' in page.text
    script = httpx.get(f"{gateway}/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]


def test_a_new_person_records_nights_follows_a_friend_and_reads_their_night(
    page: Page, settings: Settings, new_account, api: httpx.Client
):
    me = sign_up(page)
    shot(page, settings, "nights-empty")
    # Three nights, the first from the form as prefilled ("last night" in two taps).
    page.get_by_role("button", name="Record the night").click()
    mine = page.get_by_role("list", name="Your nights, newest first")
    expect(mine.get_by_role("listitem")).to_have_count(1)
    base = datetime.now(UTC).replace(hour=23, minute=0, second=0, microsecond=0)
    for days_ago in (4, 3):
        start = base - timedelta(days=days_ago)
        record_night(page, start, start + timedelta(hours=7, minutes=30))
        expect(mine.get_by_role("listitem")).to_have_count(6 - days_ago)  # 2, then 3
    expect(mine).to_contain_text("7 h 30 min")
    page.reload()  # as read back from the API, with the averages the statistics have by now
    expect(mine.get_by_role("listitem")).to_have_count(3)
    newest = mine.get_by_role("listitem").first.locator("strong").inner_text()  # a sleep date
    expect(page.get_by_role("img", name="Hours of sleep on 3 of the last 28")).to_be_visible()
    expect(page.get_by_role("img", name="Bedtimes and wake times")).to_be_visible()
    shot(page, settings, "nights")

    friend = new_account()
    # Ended half an hour ago: on this week's board whenever last night is (see below).
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=8, minutes=30)
    night = {
        "startTime": start.isoformat(),
        "endTime": (start + timedelta(hours=8)).isoformat(),
        "quality": 5,
    }
    assert api.post("/v1/sleepEntries", json=night, headers=friend.auth).status_code == 200
    page.get_by_role("link", name="Feed").click()
    page.get_by_label("Their username").fill(friend.username)
    page.get_by_role("button", name="Open their profile").click()
    page.get_by_role("button", name="Follow").click()
    expect(page.get_by_role("status")).to_contain_text(f"You follow @{friend.username}")
    page.reload()
    expect(page.get_by_role("region", name="Followers")).to_contain_text(f"@{me}")
    shot(page, settings, "person")

    page.get_by_role("link", name="Feed").click()
    items = page.get_by_role("list", name="Nights of the people you follow")
    refresh = page.get_by_role("button", name="Refresh")
    until_shown(page, items, f"@{friend.username} slept 8 h 00 min", refresh.click)
    shot(page, settings, "feed")

    # Where they stand: this week among the people they follow (the global boards show only
    # those who share their nights with everyone). Last night counts this week, unless the
    # test runs on a Monday before it ended (07:00): then the board of all time.
    page.get_by_role("link", name="Leaderboards").click()
    expect(page.locator(".window")).to_contain_text("resets")  # this week's, in their zone
    page.get_by_label("Among").select_option("following")
    if date.fromisoformat(newest).isocalendar()[:2] != datetime.now(UTC).isocalendar()[:2]:
        page.get_by_label("When").select_option("all-time")
    board = page.locator("table.board")

    def again() -> None:
        page.get_by_label("Ranked by").select_option("nights")
        page.get_by_label("Ranked by").select_option("total-duration")

    until_shown(page, page.locator("main"), "(you)", again)
    expect(board.locator("tr.me")).to_contain_text(me)
    expect(board).to_contain_text(friend.username)
    shot(page, settings, "boards")

    page.get_by_role("link", name="Statistics").click()
    until_shown(page, page.locator("main"), "3 nights recorded", page.reload)
    expect(page.locator("dl.figures")).to_contain_text("Average night")
    shot(page, settings, "stats")


def test_nights_are_entered_and_shown_in_the_persons_own_zone_not_the_browsers(
    browser: Browser, gateway: str, settings: Settings
):
    context = browser.new_context(
        base_url=gateway, timezone_id="America/New_York", user_agent=person(browser)
    )
    page = context.new_page()
    try:
        username = unique("web").replace("-", "_")[:30]
        page.goto("/#/signup")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Email").fill(f"{username}@example.com")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_label("Time zone").fill("Asia/Tokyo")
        page.get_by_role("button", name="Create account").click()
        form = page.get_by_role("form", name="Last night")
        expect(form).to_contain_text("Times in your zone, Asia/Tokyo")
        expect(form.get_by_label("Fell asleep")).to_have_value(re.compile(r"T23:00$"))
        expect(form.get_by_label("Woke up")).to_have_value(re.compile(r"T07:00$"))
        form.get_by_role("button", name="Record the night").click()
        mine = page.get_by_role("list", name="Your nights, newest first")
        expect(mine).to_contain_text("8 h 00 min")
        # 23:00 to 07:00 in Tokyo, as the API and the list say, whatever the browser's zone.
        night = mine.get_by_role("listitem").first
        expect(night).to_contain_text(re.compile(r"11:00\sPM.07:00\sAM"))
        expect(page.locator(".chart .uplot")).to_have_count(2)  # hours, then the clock
    finally:
        context.close()


def test_a_friends_night_appears_in_an_open_feed_by_itself_and_goes_when_deleted(
    page: Page, new_account, api: httpx.Client
):
    me = sign_up(page)
    friend = new_account()
    assert api.post(f"/v1/users/{friend.username}:follow", headers=auth(page), json={}).is_success
    page.get_by_role("link", name="Feed").click()
    expect(page.get_by_role("heading", name="Feed")).to_be_visible()
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=7, minutes=30)
    night = {"startTime": start.isoformat(), "endTime": (start + timedelta(hours=7)).isoformat()}
    created = api.post("/v1/sleepEntries", json=night, headers=friend.auth)
    assert created.status_code == 200
    items = page.get_by_role("list", name="Nights of the people you follow")
    # No tap: the open feed watches its stream (WatchFeed).
    expect(items).to_contain_text(f"@{friend.username} slept 7 h 00 min", timeout=20_000)
    expect(page.get_by_role("status")).to_contain_text("1 new night at the top")
    entry = created.json()["id"]
    assert api.delete(f"/v1/sleepEntries/{entry}", headers=friend.auth).status_code == 200
    expect(items).not_to_contain_text(f"@{friend.username}", timeout=20_000)
    assert me != friend.username


def test_a_night_is_started_and_finished_live(page: Page, settings: Settings):
    sign_up(page)
    tonight = page.get_by_role("form", name="Tonight")
    tonight.get_by_role("button", name="Going to sleep").click()
    expect(tonight.get_by_role("status")).to_contain_text("Asleep since")
    tonight.get_by_role("button", name="I'm awake").click()  # at once: too short to count
    expect(tonight.get_by_role("alert")).to_contain_text("record nights of at least 10 min")

    # Eight hours later, as far as the night is concerned; the page, reloaded, still knows.
    owner = page.evaluate("JSON.parse(localStorage.getItem('zentry.session')).user.id")
    started_hours_ago(settings, owner, 8)
    page.reload()
    tonight = page.get_by_role("form", name="Tonight")
    expect(tonight.get_by_role("status")).to_contain_text("Asleep since")
    tonight.get_by_role("button", name="I'm awake").click()
    mine = page.get_by_role("list", name="Your nights, newest first")
    expect(mine).to_contain_text("8 h 00 min")
    tonight.get_by_role("button", name="Going to sleep").click()
    tonight.get_by_role("button", name="Cancel").click()
    expect(tonight.get_by_role("button", name="Going to sleep")).to_be_visible()
    expect(mine.get_by_role("listitem")).to_have_count(1)


def started_hours_ago(settings: Settings, user_id: str, hours: int) -> None:
    """The user's open night began `hours` ago (what a night's sleep does to it)."""
    with psycopg.connect(settings.postgres.dsn("zentry_sleep"), autocommit=True) as conn:
        moved = conn.execute(
            "UPDATE sleep_entries SET start_time = start_time - make_interval(hours => %s), "
            "created_at = created_at - make_interval(hours => %s) "
            "WHERE user_id = %s AND state = 'open'",
            (hours, hours, user_id),
        )
        assert moved.rowcount == 1


def auth(page: Page) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(page)}"}


def test_a_night_is_edited_in_place(page: Page, settings: Settings):
    sign_up(page)
    start = datetime.now(UTC).replace(hour=22, minute=0, second=0, microsecond=0)
    start -= timedelta(days=3)
    record_night(page, start, start + timedelta(hours=8))
    mine = page.get_by_role("list", name="Your nights, newest first")
    expect(mine).to_contain_text("8 h 00 min")
    mine.get_by_role("button", name="Edit the night").first.click()
    edit = page.get_by_role("form", name="Edit the night")
    edit.get_by_label("Woke up").fill((start + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M"))
    edit.get_by_role("button", name="Save").click()
    expect(mine).to_contain_text("6 h 00 min")
    expect(mine).not_to_contain_text("8 h 00 min")


def test_the_apps_own_page_views_reach_the_admins_analytics(page: Page, settings: Settings):
    username = sign_up(page)
    grant_admin(username)
    page.get_by_role("button", name="Log out").click()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="Analytics").click()
    top = page.locator("table.board").first  # top pages: /boards is only ever the app's
    expect(top).to_be_visible()
    before = boards_views(top)
    for _ in range(VISITS):
        page.get_by_role("link", name="Leaderboards").click()
        expect(page.get_by_role("heading", name="Leaderboards")).to_be_visible()
        page.get_by_role("link", name="Statistics").click()
    page.get_by_role("link", name="Analytics").click()
    # Sent every 2 s, then rolled up. Only this app ever shows /boards, but an earlier
    # test's last page view may still be on its way: at least ours, then.
    for _ in range(40):
        if boards_views(page.locator("table.board").first) >= before + VISITS:
            break
        page.wait_for_timeout(500)
        page.get_by_role("button", name="Show").click()
    assert boards_views(page.locator("table.board").first) >= before + VISITS
    shot(page, settings, "analytics")


def boards_views(table) -> int:
    for row in table.locator("tbody tr").all():
        cells = row.locator("td").all_inner_texts()
        if cells[0] == "/boards":
            return int(cells[1])
    return 0


def test_an_overlapping_night_shows_the_apis_message_next_to_its_start(
    page: Page, settings: Settings
):
    sign_up(page)
    start = datetime.now(UTC).replace(hour=22, minute=0, second=0, microsecond=0)
    start -= timedelta(days=2)
    record_night(page, start, start + timedelta(hours=8))
    expect(page.get_by_role("list", name="Your nights, newest first")).to_contain_text("8 h")
    record_night(page, start + timedelta(hours=2), start + timedelta(hours=9))
    error = page.locator("#field-startTime-error")
    expect(error).to_contain_text("overlaps your entry")
    expect(page.get_by_label("Fell asleep")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Fell asleep")).to_be_focused()
    shot(page, settings, "overlap")


def test_sign_up_errors_name_their_fields(page: Page):
    page.goto("/#/signup")
    page.get_by_label("Username").fill("no spaces allowed")
    page.get_by_label("Email").fill("someone@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#field-username-error")).not_to_be_empty()
    expect(page.get_by_label("Username")).to_have_attribute("aria-invalid", "true")


def test_settings_ask_before_a_follow_and_the_request_is_approved_here(
    page: Page, settings: Settings, new_account, api: httpx.Client
):
    me = sign_up(page)
    page.get_by_role("link", name="Settings").click()
    page.get_by_label("Ask me before someone follows me").check()
    page.get_by_label("Only me").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Saved.")
    friend = new_account()
    asked = api.post(f"/v1/users/{me}:follow", headers=friend.auth, json={})
    assert asked.status_code == 200 and asked.json()["requested"] is True
    page.reload()
    requests = page.get_by_role("list", name="Follow requests")
    expect(requests).to_contain_text(f"@{friend.username}")
    shot(page, settings, "settings")
    requests.get_by_role("button", name="Approve").click()
    expect(requests).to_contain_text(f"Approved @{friend.username}")
    following = api.get(f"/v1/users/{friend.username}/following", headers=friend.auth).json()
    assert [u["username"] for u in following["users"]] == [me]
    profile = api.get("/v1/users/me", headers={"Authorization": f"Bearer {token(page)}"})
    assert profile.json()["nightsVisibleTo"] == "onlyMe"


def token(page: Page) -> str:
    return page.evaluate("JSON.parse(localStorage.getItem('zentry.session')).accessToken")


def test_a_phone_sized_screen_never_scrolls_sideways(browser: Browser, gateway: str, settings):
    context = browser.new_context(
        base_url=gateway, viewport=PHONE, is_mobile=True, user_agent=person(browser)
    )
    page = context.new_page()
    try:
        sign_up(page)
        page.get_by_role("button", name="Record the night").click()
        expect(page.get_by_role("list", name="Your nights, newest first")).to_contain_text("h")
        for view in ("/#/nights", "/#/feed", "/#/boards", "/#/stats", "/#/settings"):
            page.goto(view)
            expect(page.locator("h1")).to_be_visible()
            wide = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert wide <= 0, f"{view} is {wide} px wider than a phone"
        shot(page, settings, "phone")  # the last view: settings
    finally:
        context.close()


def test_signing_in_works_with_the_keyboard_alone(page: Page, new_account):
    account = new_account()
    page.goto("/")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.keyboard.press("Tab")  # the skip link comes first
    for _ in range(5):
        if page.evaluate("document.activeElement.name") == "username":
            break
        page.keyboard.press("Tab")
    page.keyboard.type(account.username)
    page.keyboard.press("Tab")
    page.keyboard.type(account.password)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="My nights", level=1)).to_be_visible()
    expect(page.get_by_role("heading", name="My nights", level=1)).to_be_focused()
    page.keyboard.press("Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "the focused control shows it is focused"
