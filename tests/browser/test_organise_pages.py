"""The organiser's pages in a real browser, under the server's Content-Security-Policy: sign in, set a deliberation
up (a refused setting is explained, then fixed), open it, hand a moderator a single-use invite that they accept by
creating an account (and then see the deliberation read-only), watch people arrive in the lobby and start a round."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import Browser, Page

from server.deliberations.store import DeliberationStore
from server.lobby.notice import NOTICE_VERSION
from tests.browser.conftest import locale_words, sign_in_page, staff_headers
from tests.browser.test_csp import watch
from tests.servers import RunningServer

pytestmark = pytest.mark.slow

def arrive(base_url: str, deliberation: str, name: str, region: str) -> None:
    answer = httpx.post(f"{base_url}/api/lobby/{deliberation}/arrive", json={
        "name": name, "consent": True, "notice_version": NOTICE_VERSION, "answers": {"q1": region}}, timeout=10)
    assert answer.status_code == 201, answer.text


def test_organiser_sets_up_opens_invites_and_starts_a_round(server: RunningServer, base_url: str,
                                                            quiet_browser: Browser,
                                                            new_page: Callable[..., Page]) -> None:
    staff_headers(server, "setup@example.org", "organiser")  # the account exists
    page = new_page(quiet_browser, enforce_csp=True)
    problems = watch(page)
    page.goto(f"{base_url}/organise")
    sign_in_page(page, "setup@example.org")
    page.get_by_role("link", name="New deliberation").click()
    page.wait_for_url("**/organise/new")

    page.get_by_label("Title").fill("Sunday library")
    page.get_by_label("The question people deliberate").fill("Should the library open on Sundays?")
    page.get_by_label("Background material").fill("It opens Monday to Saturday.\n\nSundays cost 40,000 a year.")
    page.get_by_label("Facilitator template").select_option("quick-20")
    page.get_by_label("Smallest group").fill("4")
    page.get_by_label("Largest group").fill("2")
    page.get_by_label("A moderator approves each one first").check()
    page.get_by_label("Statements from other rooms each room also votes on").fill("2")
    page.click("#add-question")
    page.get_by_label("Question", exact=True).fill("Where do you live?")
    page.get_by_label("Choices, one per line").fill("North\nSouth")
    page.get_by_label("Spread the answers to this question evenly across rooms").select_option("q1")
    page.get_by_label("Languages offered").fill("en, fr")
    page.get_by_label("Delete transcripts this many days after closing").fill("30")
    page.get_by_role("button", name="Create the deliberation").click()
    error = page.get_by_role("alert")
    error.wait_for(timeout=10_000)
    assert "group_min must not exceed group_max" in error.inner_text(), "the refusal names what to fix"
    assert page.url.endswith("/organise/new")
    page.get_by_label("Smallest group").fill("2")
    page.get_by_role("button", name="Create the deliberation").click()
    page.wait_for_url(lambda url: "/organise/" in url and not url.endswith("/new"), timeout=10_000)
    deliberation = page.url.rsplit("/", 1)[1]

    stored = DeliberationStore(server.ctx.storage.sessions).get(deliberation)
    assert stored is not None and stored.status == "draft"
    spec = stored.spec
    assert (spec.title, spec.group_min, spec.group_max, spec.ai_messages) == ("Sunday library", 2, 2, "approve")
    assert spec.cross_pollination == 2
    assert spec.background == "It opens Monday to Saturday.\n\nSundays cost 40,000 a year."
    assert [(q.text, q.choices) for q in spec.signup_questions] == [("Where do you live?", ["North", "South"])]
    assert spec.mix_question == "q1" and spec.languages == ["en", "fr"] and spec.retention_days == 30
    assert page.input_value("#participant-url") == f"{base_url}/d/{deliberation}"
    assert page.inner_text("#status") == "Draft"
    assert page.is_disabled("#start-round"), "no round before it opens"

    page.click("#open")
    page.wait_for_selector("#status:text('Open')", timeout=10_000)

    # A moderator invite, accepted in another browser by creating an account.
    page.click("#create-invite")
    invite_url = page.input_value("#invite-url")
    assert invite_url.startswith(f"{base_url}/invite/")
    moderator = new_page(quiet_browser, enforce_csp=True)
    moderator_problems = watch(moderator)
    moderator.goto(invite_url)
    moderator.wait_for_selector("#invite-form", timeout=10_000)
    assert "Sunday library" in moderator.inner_text("main")
    moderator.get_by_label("Email").fill("new.moderator@example.org")
    moderator.get_by_label("Password (at least 12 characters)").fill("a long enough secret")
    moderator.get_by_label("The same password again").fill("a long enough secret")
    moderator.get_by_role("button", name="Create the account and accept").click()
    moderator.click("#go-deliberation")
    moderator.wait_for_selector("#lobby-heading", timeout=10_000)
    assert moderator.locator("#open, #pause, #close, #create-invite, #start-round").count() == 0, "read-only"
    assert moderator.is_disabled("#spec-title")
    moderator.goto(invite_url)  # single use
    moderator.wait_for_selector("text=unknown, already used or expired", timeout=10_000)
    page.reload()
    page.wait_for_selector("text=new.moderator@example.org", timeout=10_000)

    # People arrive; the organiser sees them wait, starts a round, and sees the room they are in.
    arrive(base_url, deliberation, "Ada", "North")
    arrive(base_url, deliberation, "Bo", "South")
    page.wait_for_selector("#waiting:has-text('2 waiting')", timeout=15_000)
    page.click("#start-round")
    page.wait_for_selector("#round-result:has-text('Formed 1 room; 0 still waiting.')", timeout=10_000)
    page.wait_for_selector(".room-list li:has-text('2 people')", timeout=10_000)
    assert page.locator("#waiting").inner_text().startswith("0 waiting")
    page.get_by_label("A message to every room").fill("We resume at three.")
    page.click("#broadcast")
    page.wait_for_selector("#step-in-result:has-text('Sent to 1 room.')", timeout=10_000)
    page.click("#pause-all")
    page.wait_for_selector("#step-in-result:has-text('AI facilitator paused in 1 room.')", timeout=10_000)

    # Back to the list: the deliberation is there with its status.
    page.get_by_role("link", name="All deliberations").click()
    page.wait_for_selector(".deliberation-list li:has-text('Sunday library')", timeout=10_000)
    assert "Open" in page.locator(".deliberation-list li:has-text('Sunday library')").inner_text()
    assert problems == [] and moderator_problems == []


def test_a_used_or_unknown_invite_says_so(base_url: str, quiet_browser: Browser,
                                         new_page: Callable[..., Page]) -> None:
    page = new_page(quiet_browser, enforce_csp=True)
    page.goto(f"{base_url}/invite/{'x' * 43}")
    page.wait_for_selector("text=unknown, already used or expired", timeout=10_000)


def test_the_organisers_page_is_in_the_browsers_language_and_switches_in_place(
        server: RunningServer, base_url: str, quiet_browser: Browser, new_page: Callable[..., Page]) -> None:
    staff_headers(server, "francais@example.org", "organiser")
    french, spanish = locale_words("fr"), locale_words("es")
    page = new_page(quiet_browser, locale="fr-FR")
    page.goto(f"{base_url}/organise")
    sign_in_page(page, "francais@example.org")
    page.wait_for_selector("#list-heading", timeout=10_000)
    assert page.evaluate("document.documentElement.lang") == "fr"
    assert page.text_content("#list-heading") == french["organise.heading"]
    assert page.text_content("header .room-title") == french["organise.heading"]
    assert page.get_by_role("link", name=str(french["organise.new"])).is_visible()
    assert page.title() == french["organise.page_title"]

    page.evaluate("window.notReloaded = true")
    page.select_option("#locale-switch", "es")
    page.wait_for_function("document.documentElement.lang === 'es'", timeout=10_000)
    page.wait_for_selector(f"#list-heading:text-is('{spanish['organise.heading']}')", timeout=10_000)
    assert page.get_by_role("link", name=str(spanish["organise.new"])).is_visible()
    assert page.text_content("header .room-title") == spanish["organise.heading"]
    assert page.evaluate("window.notReloaded") is True, "switched in place, without reloading"
