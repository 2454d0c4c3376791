"""Browser tests: headless Chromium (Debian's; no Playwright browser download) against the real server, WebRTC and ASR.

WebRTC must stay on 127.0.0.1: aioice offers loopback candidates only in test mode, and a browser outside a network
namespace would pick the machine's external address. So these tests run inside a private network namespace
(``unshare -rn``, loopback up, and a default route through loopback: without camera/microphone permission Chromium
gathers candidates only on the default-route interface).

A plain ``pytest`` run (outside a namespace) does not run the tests of this directory itself: it runs them all in one
child pytest inside a namespace and each test reports its child's outcome (the first one carries the whole child run's
duration). Inside (``MOOT_BROWSER_NETNS=1``) the fixtures below start the server, make the speech files with espeak-ng
and launch the browsers. To run the child directly:

    unshare -rn sh -c 'ip link set lo up && ip route add default dev lo &&
        MOOT_BROWSER_NETNS=1 exec .venv/bin/python -m pytest tests/browser'
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from server.core.settings import Settings
from tests.servers import RunningServer, running_server
from tests.staff import PASSWORD, server_headers

NETNS_ENV = "MOOT_BROWSER_NETNS"
RESULTS_ENV = "MOOT_BROWSER_RESULTS"
INSIDE = os.environ.get(NETNS_ENV) == "1"
HERE = Path(__file__).resolve().parent
CHILD_TIMEOUT_S = 1200  # bounds a hang of the whole browser run (a few minutes on a quiet 2-core machine)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--use-fake-device-for-media-stream", "--allow-loopback-in-peer-connection", "--no-sandbox", "--disable-gpu",
    "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--autoplay-policy=no-user-gesture-required",
    # Pages without camera/microphone permission would hide their address behind an mDNS name, which nothing in a
    # loopback-only namespace resolves (real receive-only users connect through peer-reflexive candidates).
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]
# What the speaker's fake microphone says (Chromium loops the file; the silence after it ends the utterance).
SPEECH = "Good morning everyone. I think the library should open on Sundays, so that families can read together."


# ---------------------------------------------------------------------------------------------------------------------
# Outside a namespace: run this directory's tests in one child pytest inside one, and report its outcomes.


class InnerFailure(Exception):
    """A browser test failed in the namespaced child run; the message is the child's report."""


class NamespacedTest(pytest.Item):
    """Stands for one browser test in the outer run: its outcome is that of the same test in the child run."""

    def runtest(self) -> None:
        results = _child_results(self.session)
        result = results.get(self.nodeid)
        if result is None:
            raise InnerFailure(f"the namespaced run did not report this test\n{results.get('', {}).get('log', '')}")
        if result["outcome"] == "failed":
            raise InnerFailure(result["longrepr"])
        if result["outcome"] == "skipped":
            pytest.skip(result["longrepr"])

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, InnerFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.name} (in a network namespace)"


_RESULTS = pytest.StashKey[dict[str, dict[str, Any]]]()


@pytest.hookimpl(trylast=True)  # after -k / -m deselection
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    if INSIDE:
        return
    for index, item in enumerate(items):
        if isinstance(item, pytest.Function) and HERE in item.path.parents and item.parent is not None:
            stand_in = NamespacedTest.from_parent(item.parent, name=item.name)
            stand_in.own_markers.extend(item.own_markers)
            stand_in.add_marker(pytest.mark.timeout(CHILD_TIMEOUT_S + 60))
            items[index] = stand_in


def _child_results(session: pytest.Session) -> dict[str, dict[str, Any]]:
    """Run every selected browser test once, in one child pytest inside a fresh network namespace."""
    if _RESULTS in session.stash:
        return session.stash[_RESULTS]
    for tool in ("chromium", "unshare", "ip", "espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise InnerFailure(f"{tool} is required for the browser tests (./scripts/test installs it)")
    node_ids = [item.nodeid for item in session.items if isinstance(item, NamespacedTest)]
    with tempfile.TemporaryDirectory(prefix="moot-browser-") as tmp:
        results_file = Path(tmp) / "results.json"
        script = 'ip link set lo up && ip route add default dev lo && exec "$@"'
        command = ["unshare", "-rn", "sh", "-c", script, "sh", sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                   "-q", "-rN", *node_ids]
        env = {**os.environ, NETNS_ENV: "1", RESULTS_ENV: str(results_file)}
        # Own process group, so a timeout also ends the browsers and the server the child started.
        proc = subprocess.Popen(command, cwd=session.config.rootpath, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            log, _ = proc.communicate(timeout=CHILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            log, _ = proc.communicate()
            log = f"the namespaced browser tests ran over {CHILD_TIMEOUT_S} s\n{log}"
        except BaseException:  # interrupted (Ctrl-C, pytest-timeout): leave nothing running
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        results: dict[str, dict[str, Any]] = json.loads(results_file.read_text()) if results_file.exists() else {}
    results[""] = {"log": log[-6000:]}
    session.stash[_RESULTS] = results
    return results


# ---------------------------------------------------------------------------------------------------------------------
# Inside the namespace: record outcomes for the outer run.

_reports: dict[str, dict[str, Any]] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not INSIDE:
        return
    entry = _reports.setdefault(report.nodeid, {"outcome": "passed", "longrepr": "", "duration": 0.0})
    entry["duration"] += report.duration
    if report.failed and entry["outcome"] != "failed":
        entry.update(outcome="failed", longrepr=f"[{report.when}] {report.longreprtext}")
    elif report.skipped and entry["outcome"] == "passed":
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longreprtext
        entry.update(outcome="skipped", longrepr=str(reason))


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = os.environ.get(RESULTS_ENV)
    if INSIDE and target:
        Path(target).write_text(json.dumps(_reports))


def _check_isolated() -> None:
    interfaces = sorted(name for _, name in socket.if_nameindex())  # of this process's namespace (unlike /sys)
    assert interfaces == ["lo"], f"browser tests must run in a private network namespace, found {interfaces}"


# ---------------------------------------------------------------------------------------------------------------------
# Fixtures (used inside the namespace)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The real server: WebRTC with loopback candidates, captions from the default Whisper model (base)."""
    _check_isolated()
    data = tmp_path_factory.mktemp("data")
    # The base model is assembled from its two packages once into a cache shared by runs (145 MB), not per run.
    models = Path(tempfile.gettempdir()) / "moot-test-models"
    settings = Settings(data_dir=data, model_cache_dir=models, rtc_loopback_candidates=True, asr_language="en")
    with running_server(settings) as running:
        yield running


@pytest.fixture(scope="session")
def base_url(server: RunningServer) -> str:
    return server.http


def _wav(directory: Path, name: str, text: str | None, silence_s: float) -> Path:
    """16 kHz mono WAV: ``text`` spoken by espeak-ng (if any) between 1.5 s and ``silence_s`` of silence."""
    raw = directory / f"{name}.raw.wav"
    out = directory / f"{name}.wav"
    if text:
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), text], check=True)
        # -D: no dither, so the same text gives the same samples on every run (dither is random noise).
        subprocess.run(["sox", "-D", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out), "pad", "1.5",
                        str(silence_s)], check=True)
    else:
        subprocess.run(["sox", "-D", "-n", "-r", "16000", "-c", "1", "-b", "16", str(out), "trim", "0", str(silence_s)],
                       check=True)
    return out


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _wav(tmp_path_factory.mktemp("speech"), "speech", SPEECH, 2.5)


@pytest.fixture(scope="session")
def silence_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _wav(tmp_path_factory.mktemp("silence"), "silence", None, 3.0)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


def _launch(pw: Playwright, audio_file: Path, grant_devices: bool) -> Browser:
    flags = [*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={audio_file}"]
    if grant_devices:
        flags.append("--use-fake-ui-for-media-stream")  # accept camera/microphone prompts
    return pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags)


@pytest.fixture(scope="session")
def speaking_browser(playwright: Playwright, speech_wav: Path) -> Iterator[Browser]:
    """Fake camera; the fake microphone says SPEECH."""
    browser = _launch(playwright, speech_wav, grant_devices=True)
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def quiet_browser(playwright: Playwright, silence_wav: Path) -> Iterator[Browser]:
    """Fake camera; the fake microphone is silent."""
    browser = _launch(playwright, silence_wav, grant_devices=True)
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def asking_browser(playwright: Playwright, silence_wav: Path) -> Iterator[Browser]:
    """Camera and microphone only as far as a context's ``permissions`` grant them (the rest is refused)."""
    browser = _launch(playwright, silence_wav, grant_devices=False)
    yield browser
    browser.close()


@pytest.fixture
def new_page() -> Iterator[Callable[..., Page]]:
    """new_page(browser, permissions=None, enforce_csp=False, locale=None): a page in its own context, closed after
    the test; ``locale`` is the browser's language (e.g. "fr-FR").

    Playwright's waiting for a JavaScript condition evaluates strings in the page, which the server's
    Content-Security-Policy forbids; tests bypass the policy unless they check it (tests/browser/test_csp.py runs
    the pages under it)."""
    contexts: list[BrowserContext] = []

    def make(browser: Browser, permissions: list[str] | None = None, enforce_csp: bool = False,
             locale: str | None = None) -> Page:
        context = browser.new_context(permissions=permissions, viewport={"width": 1280, "height": 800},
                                      bypass_csp=not enforce_csp, locale=locale)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


# ---------------------------------------------------------------------------------------------------------------------
# Helpers

LOCALES = Path(__file__).resolve().parents[2] / "client" / "locales"


def locale_words(code: str) -> dict[str, Any]:
    """The interface's words in ``code`` (client/locales/<code>.json), to check a page shown in that language."""
    return dict(json.loads((LOCALES / f"{code}.json").read_text(encoding="utf-8")))


def create_room(base_url: str, title: str, headers: dict[str, str] | None = None, **extra: Any) -> str:
    """A stand-alone room: anyone's (open rooms, the default), or the signed-in organiser's with ``headers``."""
    response = httpx.post(f"{base_url}/api/rooms", json={"title": title, **extra}, headers=headers, timeout=10)
    response.raise_for_status()
    return str(response.json()["id"])


STAFF_PASSWORD = PASSWORD


def staff_headers(server: RunningServer, email: str = "organiser@example.org",
                  role: str = "organiser") -> dict[str, str]:
    """Bearer headers for an account on the running server (created in-process if new)."""
    return server_headers(server, email, role)


def sign_in_page(page: Page, email: str = "organiser@example.org") -> None:
    """Fill and send a page's sign-in form (landing or moderator page)."""
    page.wait_for_selector("#sign-in:not([hidden])", timeout=10_000)
    page.fill("#sign-in-email", email)
    page.fill("#sign-in-password", STAFF_PASSWORD)
    page.click("#sign-in button[type=submit]")


def wait_devices_checked(page: Page) -> None:
    page.wait_for_function("!document.getElementById('device-status').textContent.startsWith('Checking')",
                           timeout=20_000)


def join(page: Page, base_url: str, room: str, name: str) -> None:
    """Open the room page, give a name and consent, join, and wait for the room view."""
    page.goto(f"{base_url}/r/{room}")
    wait_devices_checked(page)
    page.fill("#display-name", name)
    page.check("#consent")
    page.click("#join-button")
    page.wait_for_selector("#room-view:not([hidden])", timeout=20_000)


# True once the video in the tile labelled `name` has frames and its playback clock has moved on by 0.3 s since the
# first poll that saw frames (the baseline is kept on `window` between polls).
VIDEO_ADVANCING = """(name) => {
    const tile = [...document.querySelectorAll('.tile')].find(t => t.querySelector('.name').textContent === name);
    const video = tile && tile.querySelector('video');
    if (!video || video.videoWidth === 0) return false;
    const seen = (window.__videoClock ||= {});
    if (!(name in seen)) seen[name] = video.currentTime;
    if (video.currentTime > seen[name] + 0.3) { delete seen[name]; return true; }
    return false;
}"""


def wait_video_playing(page: Page, name: str, timeout_ms: int = 30_000) -> None:
    page.wait_for_function(VIDEO_ADVANCING, arg=name, polling=100, timeout=timeout_ms)


def tile_names(page: Page) -> list[str]:
    return page.eval_on_selector_all(".tile .name", "els => els.map(e => e.textContent)")
