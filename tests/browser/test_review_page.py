"""The review page in a real browser, under the Content-Security-Policy: the organiser signs in, searches what was
said across the deliberation's rooms, opens a result in its room's transcript, sees statements with their votes and
everyone by alias, and every export downloads and parses. And the page in the reader's language: French for a French
browser, Dutch at once (no reload) when the reader switches."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import Browser, Page

from server.core.events import AIMessage, AIMessagePoint, CaptionFinal, StatementAdded
from server.lobby.notice import NOTICE_VERSION
from tests.browser.conftest import locale_words, sign_in_page, staff_headers
from tests.browser.test_csp import watch
from tests.servers import RunningServer

pytestmark = pytest.mark.slow


SPEC = {"title": "Town homes", "question": "Where should the town build homes?", "template": "quick-20",
        "group_min": 2, "group_max": 2}


def test_search_open_in_context_and_every_export(server: RunningServer, base_url: str, quiet_browser: Browser,
                                                 new_page: Callable[..., Page]) -> None:
    headers = staff_headers(server, "reviewer@example.org", "organiser")
    deliberation = httpx.post(f"{base_url}/api/deliberations", json=SPEC, headers=headers, timeout=10).json()["id"]
    assert httpx.post(f"{base_url}/api/deliberations/{deliberation}/open", headers=headers,
                      timeout=10).status_code == 200
    people = [httpx.post(f"{base_url}/api/lobby/{deliberation}/arrive", json={
        "name": name, "consent": True, "notice_version": NOTICE_VERSION, "answers": {}}, timeout=10).json()
        for name in ("Rosalind", "Theodore")]
    rooms = httpx.post(f"{base_url}/api/deliberations/{deliberation}/rounds", headers=headers, timeout=10).json()
    (room,) = rooms["rooms"]
    storage = server.ctx.storage
    rosalind, theodore = (p["participant_id"] for p in people)
    lines = [(rosalind, "Rosalind", "We need homes for young families.", 100.0),
             (theodore, "Theodore", "Not on the green by the river.", 104.0),
             (rosalind, "Rosalind", "Then build near the railway station.", 109.0)]
    for n, (who, name, text, start) in enumerate(lines):
        storage.add_caption(CaptionFinal(room_id=room, utterance_id=f"u{n}", participant_id=who, speaker_name=name,
                                         text=text, start=start, end=start + 3, language="en"))
    storage.add_statement(StatementAdded(room_id=room, statement_id="st1", text="Build near the station",
                                         author_id=rosalind, author_name="Rosalind"))
    storage.cast_vote("st1", rosalind, "agree", 0)
    storage.cast_vote("st1", theodore, "pass", 0)
    storage.add_ai_message(AIMessage(room_id=room, message_id="m1", kind="summary", generated_by="llm:test",
                                     text="Summary so far:\n- Key point: Homes for young families", sources=["u0"],
                                     points=[AIMessagePoint(label="Key point", text="Homes for young families",
                                                            sources=["u0"])]))

    page = new_page(quiet_browser, enforce_csp=True)
    problems = watch(page)
    page.goto(f"{base_url}/review/{deliberation}")
    sign_in_page(page, "reviewer@example.org")
    page.wait_for_selector("#review-heading", timeout=10_000)
    page.wait_for_selector("#review-statements li", timeout=10_000)
    assert "Build near the station (Participant 1): 1 agree, 0 disagree, 1 pass" in page.inner_text(
        "#review-statements")
    page.fill("#search-q", "railway STATION")
    page.click("button:text('Search')")
    page.wait_for_selector("#search-count:text('1 line found.')", timeout=10_000)
    assert "Then build near the railway station." in page.inner_text("#search-results")
    page.click("#search-results button")
    page.wait_for_selector("#line-u2.highlight", timeout=10_000)
    page.wait_for_selector("#line-u2:focus", timeout=10_000)  # the line in context gets the focus (just after)
    # The cross-room report: built in the background, progress shown, then the participation and why there are no
    # opinion groups (two voters are too few).
    page.click("#build-report")
    page.wait_for_selector("#report-participation", timeout=90_000)
    report = page.inner_text("#cross-room-report")
    assert "Not enough votes for opinion groups" in report
    row = page.inner_text("#report-participation tbody tr")
    assert row.split("\t")[1:6] == ["2", "2", "3", "1", "2"], row
    page.wait_for_selector("#build-report:text('Build it again')", timeout=10_000)
    page.emulate_media(media="print")  # the print stylesheet: the report without controls or navigation
    assert page.is_hidden("#build-report") and page.is_hidden(".topbar") and page.is_visible("#report-participation")
    page.emulate_media(media="screen")
    # An AI summary's point links to the line it draws on.
    source = page.locator(".ai-points a", has_text="line 1")
    assert "Homes for young families" in page.inner_text(".ai-points")
    source.click()
    page.wait_for_selector("#line-u0:focus", timeout=10_000)
    body = page.inner_text("main")
    assert "Rosalind" not in body and "Theodore" not in body, "everyone by alias"

    downloads: dict[str, str] = {}
    for link in page.locator("a[download]").all():
        with page.expect_download() as info:
            link.click()
        path = info.value.path()
        assert path is not None
        downloads[info.value.suggested_filename] = path.read_text(encoding="utf-8")
    names = sorted(downloads)
    assert len(names) == 9, names
    by_kind = {name.rsplit(".", 1)[-1] if "report" not in name else "md": text for name, text in downloads.items()}
    assert by_kind["vtt"].startswith("WEBVTT") and "<v Participant 1>We need homes" in by_kind["vtt"]
    assert by_kind["srt"].startswith("1\n00:00:00,000 --> 00:00:03,000\nParticipant 1: We need homes")
    transcript_csv = next(t for n, t in downloads.items() if n.endswith(".csv") and "start_s" in t)
    assert [r["speaker"] for r in csv.DictReader(io.StringIO(transcript_csv))] == [
        "Participant 1", "Participant 2", "Participant 1"]
    assert len(json.loads(by_kind["json"])["captions"]) == 3
    assert by_kind["md"].startswith("# ")
    votes = next(t for n, t in downloads.items() if n.startswith("votes"))
    assert sorted(r["vote"] for r in csv.DictReader(io.StringIO(votes))) == ["0", "1"]
    assert all("Rosalind" not in text and "Theodore" not in text for text in downloads.values())
    assert problems == []


def test_review_page_in_french_then_dutch(server: RunningServer, base_url: str, quiet_browser: Browser,
                                          new_page: Callable[..., Page]) -> None:
    french, dutch = locale_words("fr"), locale_words("nl")
    headers = staff_headers(server, "reviewer@example.org", "organiser")
    deliberation = httpx.post(f"{base_url}/api/deliberations", json=SPEC, headers=headers, timeout=10).json()["id"]
    page = new_page(quiet_browser, locale="fr-FR")
    page.goto(f"{base_url}/review/{deliberation}")
    page.wait_for_function("document.documentElement.lang === 'fr'", timeout=10_000)
    sign_in_page(page, "reviewer@example.org")
    page.wait_for_selector("#review-heading", timeout=10_000)
    assert page.text_content("#search-heading") == french["review.search_heading"]
    assert page.text_content("#report-heading") == french["report.heading"]
    assert page.text_content("#review-heading") == f"Bilan : {SPEC['title']}"
    assert page.title() == french["review.page_title"]

    page.evaluate("window.__notReloaded = true")
    page.select_option("#locale-switch", "nl")
    page.wait_for_function("document.documentElement.lang === 'nl'", timeout=10_000)
    page.wait_for_function("(text) => document.getElementById('search-heading').textContent === text",
                           arg=dutch["review.search_heading"], timeout=10_000)
    assert page.evaluate("window.__notReloaded") is True
    assert page.text_content("#report-heading") == dutch["report.heading"]
    assert page.text_content("#review-heading") == f"Terugblik: {SPEC['title']}"
    assert page.text_content(".topbar .room-title") == dutch["dashboard.review"]
    assert page.title() == dutch["review.page_title"]
