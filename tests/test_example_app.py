"""The example app (``python -m example_app``) in headless Chromium: every
demo page works, the chat shows presence and escapes what users type.

With ``PUSH_SCREENSHOTS=docs/images`` the tests also save the screenshots
that ``docs/examples.md`` shows.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from playwright.sync_api import expect

from tests.support.browser import screenshot, wait_for
from tests.support.servers import ServerProcess, wait_until

# Fast publishers, so that every demo has something to show within a second.
FAST = {
    "EXAMPLE_CLOCK_MAX_INTERVAL": "0.3",
    "EXAMPLE_HOGE_INTERVAL": "0.2",
    "EXAMPLE_HTMX_INTERVAL": "0.1",
    "EXAMPLE_FEED_RATE": "5",
    "EXAMPLE_PUSH_HEARTBEAT": "0.5",
}
LOG_LINES = "(selector) => [...document.querySelectorAll(selector)].map((e) => e.textContent)"
AT_LEAST = "([selector, n]) => document.querySelectorAll(selector).length >= n"
# A generous bound on the feed's publish-to-display delay (same machine).
MAX_DISPLAY_DELAY_MS = 2000


def example_server() -> ServerProcess:
    argv = [sys.executable, "-m", "example_app", "--port", "0"]
    return ServerProcess(argv, FAST).start()


@pytest.fixture(scope="module")
def example() -> Iterator[ServerProcess]:
    with example_server() as process:
        yield process


def lines(page: Any, selector: str) -> list[str]:
    texts: list[str] = page.evaluate(LOG_LINES, selector)
    return texts


def wait_for_line(page: Any, selector: str, text: str) -> None:
    """Wait (bounded) until an element matching ``selector`` reads exactly ``text``."""
    wait_for(page, f"([s, t]) => ({LOG_LINES})(s).includes(t)", [selector, text])


def test_index_links_every_demo(page: Any, example: ServerProcess) -> None:
    page.goto(example.url + "/")
    links = page.evaluate("[...document.querySelectorAll('.demos a')].map((a) => a.pathname)")
    assert links == [
        "/clock", "/feed", "/chat", "/streaming", "/streaming/raw", "/htmx", "/rooms", "/dashboard"
    ]  # fmt: skip
    screenshot(page, "index")


def test_clock_shows_each_event_once_on_every_transport(page: Any, example: ServerProcess) -> None:
    """Switching SSE → stream → poll resumes from the last id: ids stay 1, 2, 3 …"""
    page.goto(example.url + "/clock")
    count = 0
    for transport in ("sse", "stream", "poll"):
        page.check(f"#transport input[value={transport}]")
        expect(page.locator("#status")).to_have_text(f"connected over {transport}")
        wait_for(page, AT_LEAST, ["#events li", count + 3])
        count = len(lines(page, "#events li"))
    events = lines(page, "#events li")
    assert all(re.fullmatch(r"#\d+  \d{4}-\d\d-\d\dT[\d:.]+\+00:00", line) for line in events)
    ids = [int(line[1:].split()[0]) for line in events]
    assert ids == list(range(1, len(ids) + 1))
    screenshot(page, "clock")


def delay_stats(page: Any) -> tuple[float, float]:
    """The feed page's "mean / max of the last 100" delays, in ms."""
    text = page.text_content("#delay-stats") or ""
    match = re.fullmatch(r"(\d+\.\d) ms / (\d+\.\d) ms", text)
    assert match, f"#delay-stats reads {text!r}"
    return float(match[1]), float(match[2])


def test_feed_shows_value_count_and_delay(page: Any, example: ServerProcess) -> None:
    page.goto(example.url + "/feed")
    page.click("button[data-rate='100']")
    delays = {}
    for transport in ("poll", "stream", "sse"):
        page.check(f"#transport input[value={transport}]")
        start = int(page.text_content("#count") or 0)
        wait_for(
            page, "(n) => Number(document.querySelector('#count').textContent) >= n", start + 100
        )
        delays[transport] = delay_stats(page)
    assert page.text_content("#rate") == "100 per second"
    assert re.fullmatch(r"\d+\.\d\d", page.text_content("#value") or "")
    print("publish-to-display delay at 100/s, mean / max of the last 100 (ms):", delays)
    for mean, longest in delays.values():
        # One machine, one clock: a delay is never negative and, even on a
        # busy machine, nowhere near a second at this rate.
        assert 0 <= mean <= longest < MAX_DISPLAY_DELAY_MS
    screenshot(page, "feed")
    page.click("button[data-rate='1']")
    expect(page.locator("#rate")).to_have_text("1 per second")


def test_feed_refuses_a_bad_rate(example: ServerProcess) -> None:
    for body in ({"rate": "fast"}, {"rate": 0}, []):
        assert requests.post(example.url + "/feed/rate", json=body, timeout=5).status_code == 400


def test_oversized_bodies_are_refused_unread(example: ServerProcess) -> None:
    """Declared or chunked, a body over the app's limit is refused, not held in memory."""
    big = b'{"rate": 1, "pad": "' + b"x" * (1 << 20) + b'"}'
    url, headers = example.url + "/feed/rate", {"Content-Type": "application/json"}
    declared = requests.post(url, data=big, headers=headers, timeout=5)
    chunked = requests.post(url, data=iter([big]), headers=headers, timeout=5)
    assert declared.status_code == 413
    # Chunked: werkzeug reads up to the limit, and the cut JSON is refused.
    assert chunked.status_code in (400, 413)
    assert requests.post(url, json={"rate": 1}, timeout=5).ok


def test_chat_users_see_each_other_and_presence(new_page: Any, example: ServerProcess) -> None:
    """Presence counts come from on_subscribe/on_unsubscribe: ann alone is 1
    online, bob makes 2, and when bob leaves ann sees him go, 1 left."""
    ann, bob = new_page(), new_page()
    for page, name, online in ((ann, "ann", 1), (bob, "bob", 2)):
        page.goto(example.url + "/chat")
        page.fill("#name", name)
        page.click("#name-form button")
        wait_for_line(page, "#status", f"connected as {name}")
        wait_for_line(page, "#log li", f"Hello, {name}! Online {online}")
    wait_for_line(ann, "#log li", "Hello, bob! Online 2")
    assert lines(ann, "#log li") == [
        "ann online", "Hello, ann! Online 1", "bob online", "Hello, bob! Online 2"
    ]  # fmt: skip
    assert lines(bob, "#log li") == ["bob online", "Hello, bob! Online 2"]
    ann.fill("#text", "hi bob")
    ann.press("#text", "Enter")
    wait_for_line(bob, "#log li", "ann: hi bob")

    attack = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
    bob.fill("#text", attack)
    bob.press("#text", "Enter")
    wait_for_line(ann, "#log li", f"bob: {attack}")
    for page in (ann, bob):
        assert page.evaluate("window.pwned") is None
        assert page.evaluate("document.querySelectorAll('#log script, #log img').length") == 0
    screenshot(ann, "chat")

    bob.context.close()
    wait_for_line(ann, "#log li", "bob offline")
    assert ann.get_attribute("#log li.presence:last-child", "title") == "1 online"


def test_chat_keeps_the_name_and_cuts_long_text(new_page: Any, example: ServerProcess) -> None:
    page = new_page()
    page.goto(example.url + "/chat")
    page.fill("#name", "carol")
    page.click("#name-form button")
    wait_for_line(page, "#status", "connected as carol")
    page.reload()  # the name comes back from localStorage and joins again
    wait_for_line(page, "#status", "connected as carol")

    answer = requests.post(
        example.url + "/chat/messages", json={"name": "n" * 30, "text": "t" * 1500}, timeout=5
    )
    assert answer.status_code == 201
    wait_for_line(page, "#log li", "n" * 20 + ": " + "t" * 1000)


def test_chat_shows_connection_errors(page: Any) -> None:
    with example_server() as server:
        page.goto(server.url + "/chat")
        page.fill("#name", "dan")
        page.click("#name-form button")
        wait_for_line(page, "#status", "connected as dan")
        server.stop()
        expect(page.locator("#status")).to_have_class(re.compile("error"))
    assert "connection error" in (page.text_content("#status") or "")


def test_streaming_page_parses_each_line(page: Any, example: ServerProcess) -> None:
    page.goto(example.url + "/streaming")
    wait_for(page, AT_LEAST, ["#rows tr", 3])
    rows = page.evaluate("[...document.querySelectorAll('#rows tr')].map((r) => r.innerText)")
    cells = [row.split("\t") for row in rows]
    ids = [int(id_) for id_, _, _ in cells]
    assert ids == list(range(ids[0], ids[0] - len(ids), -1))  # newest first, none missing
    # The publisher counts from hoge0, the channel's ids from 1.
    assert [message for _, message, _ in cells] == [f"hoge{id_ - 1}" for id_ in ids]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+\+00:00", at) for _, _, at in cells)
    screenshot(page, "streaming")


def test_streaming_raw_is_plain_text_as_it_grows(page: Any, example: ServerProcess) -> None:
    response = page.goto(example.url + "/streaming/raw?since=0", wait_until="commit")
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    wait_for(page, "document.body && document.body.innerText.includes('\"hoge4\"')")
    first = page.evaluate("document.body.innerText.trim().split('\\n')[0]")
    assert first.startswith('{"id":1,"event":"message","data":{"message":"hoge0","createdAt":')
    screenshot(page, "streaming-raw")


FRAGMENT_NUMBERS = "[...document.querySelectorAll('#fragments li')].map((li) => li.id)"


def test_htmx_swaps_fragments_in_and_resumes_after_a_cut(page: Any, example: ServerProcess) -> None:
    """Fragments rendered on the server arrive through htmx's SSE extension;
    after the server cuts every connection the browser's own reconnect
    (``Last-Event-ID``) brings the ones published meanwhile: each number
    exactly once, none missing."""
    page.goto(example.url + "/htmx")
    expect(page.locator("#status")).to_have_text("connected")
    wait_for(page, AT_LEAST, ["#fragments li", 3])
    expect(page.locator("#summary")).to_have_text(re.compile(r"^\d+ fragments published, the last"))
    page.evaluate(
        """() => {
          const live = document.getElementById("live");
          const count = () => document.querySelectorAll("#fragments li").length;
          live.addEventListener("htmx:sseError", () => { window.lostAt ??= count(); });
        }"""
    )
    page.click("text=Cut every connection")
    expect(page.locator("#status")).to_have_text("connected again (connection 2)")
    lost_at = page.evaluate("window.lostAt")
    # The browser waits the advertised retry (2 s) before reconnecting, while
    # a fragment is published every 0.1 s: twenty come from the resume.
    wait_for(page, AT_LEAST, ["#fragments li", lost_at + 20])
    ids = page.evaluate(FRAGMENT_NUMBERS)
    numbers = [int(id_.removeprefix("fragment-")) for id_ in ids]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), numbers


def test_htmx_notes_are_rendered_escaped_for_every_page(
    new_page: Any, example: ServerProcess
) -> None:
    writer, reader = new_page(), new_page()
    for page in (writer, reader):
        page.goto(example.url + "/htmx")
        expect(page.locator("#status")).to_have_text("connected")
    attack = '<b>bold</b><img src=x onerror="window.pwned = 1">'
    writer.fill("#live form input[name=text]", attack)
    writer.press("#live form input[name=text]", "Enter")
    for page in (writer, reader):
        expect(page.locator("#notes li").first).to_have_text(re.compile(re.escape(attack) + "$"))
        assert page.evaluate("document.querySelectorAll('#notes b, #notes img').length") == 0
        assert page.evaluate("window.pwned") is None
    expect(writer.locator("#live form input[name=text]")).to_have_value("")
    writer.fill("#live form input[name=text]", "Rendered once, swapped into every page")
    writer.press("#live form input[name=text]", "Enter")
    expect(reader.locator("#notes li")).to_have_count(2)
    wait_for(reader, AT_LEAST, ["#fragments li", 12])
    screenshot(reader, "htmx")
    assert (
        requests.post(example.url + "/htmx/notes", data={"text": " "}, timeout=5).status_code == 400
    )


def say(server: ServerProcess, room: str, text: str) -> int:
    answer = requests.post(
        f"{server.url}/rooms/{room}/messages", json={"name": "ann", "text": text}, timeout=5
    )
    assert answer.status_code == 201, answer.text
    message_id: int = answer.json()["id"]
    return message_id


def open_push_connections(server: ServerProcess) -> dict[str, int]:
    counts: dict[str, int] = requests.get(server.url + "/connections", timeout=5).json()["open"]
    return counts


def test_rooms_follow_the_ticked_rooms_over_one_connection(
    page: Any, example: ServerProcess
) -> None:
    """The ticked rooms share one connection; ticking a room adds it (with
    its history), unticking removes it; the others go on."""
    say(example, "gevent", "before the page opened")
    say(example, "lobby", "welcome to the lobby")
    paths: list[str] = []
    page.on("request", lambda r: paths.append(r.url) if "/push/sse/" in r.url else None)
    page.goto(example.url + "/rooms")
    expect(page.locator("#status")).to_have_text("connected over sse")
    wait_for_line(page, "#room-gevent li", "ann: before the page opened")
    wait_for_line(page, "#room-lobby li", "ann: welcome to the lobby")
    page.fill("#name", "bob")
    page.select_option("#room", "gevent")
    page.fill("#text", "hello gevent")
    page.press("#text", "Enter")
    wait_for_line(page, "#room-gevent li", "bob: hello gevent")

    page.check("input[value=random]")
    say(example, "random", "in random")
    wait_for_line(page, "#room-random li", "ann: in random")
    screenshot(page, "rooms")
    page.uncheck("input[value=gevent]")
    say(example, "gevent", "not seen")
    say(example, "random", "still seen")
    wait_for_line(page, "#room-random li", "ann: still seen")
    assert "ann: not seen" not in lines(page, "#room-gevent li")
    assert lines(page, "#room-random li") == ["ann: in random", "ann: still seen"]
    assert [url.split("?")[0].rsplit("/", 1)[1] for url in paths] == [
        "room.lobby,room.gevent",
        "room.lobby,room.gevent,room.random",
        "room.lobby,room.random",
    ]


def test_rooms_refuse_an_unknown_room(example: ServerProcess) -> None:
    answer = requests.post(
        example.url + "/rooms/nope/messages", json={"name": "a", "text": "b"}, timeout=5
    )
    assert answer.status_code == 404


TABS = 10  # more than a browser's six connections per host


def test_ten_dashboard_tabs_share_one_connection_and_survive_their_leader(
    new_context: Any, example: ServerProcess
) -> None:
    """Ten tabs of one browser: the server counts one push connection, every
    tab shows every message of its channels once and in order, and when the
    tab holding the connection closes another takes over, losing nothing."""
    context = new_context()
    tabs = []
    for _ in range(TABS):
        tab = context.new_page()
        tab.goto(example.url + "/dashboard")
        tabs.append(tab)
    for tab in tabs:
        expect(tab.locator("#status")).to_have_text("connected over sse")
    wait_until(lambda: open_push_connections(example) == {"sse": 1}, 10, "one push connection")
    say(example, "lobby", "hello, ten tabs")
    for tab in tabs:
        wait_for_line(tab, "#lobby li", "ann: hello, ten tabs")
    screenshot(tabs[0], "dashboard")

    leaders = [tab for tab in tabs if tab.evaluate("subscription.leader")]
    assert len(leaders) == 1
    followers = [tab for tab in tabs if tab is not leaders[0]]
    clock_seen = len(followers[0].evaluate("shownIds.clock"))
    leaders[0].close()
    wait_until(
        lambda: sum(tab.evaluate("subscription.leader") for tab in followers) == 1,
        5,
        "a new leader",
    )
    last = say(example, "lobby", "after the takeover")
    for tab in followers:
        wait_for_line(tab, "#lobby li", "ann: after the takeover")
    wait_for(followers[0], "(n) => shownIds.clock.length >= n + 3", clock_seen)
    wait_until(lambda: open_push_connections(example) == {"sse": 1}, 10, "one push connection")
    for tab in followers:
        ids = tab.evaluate("shownIds")
        assert ids["clock"] == list(range(1, len(ids["clock"]) + 1))
        assert ids["feed"] == list(range(ids["feed"][0], ids["feed"][0] + len(ids["feed"])))
        assert ids["room.lobby"] == list(range(1, last + 1))
