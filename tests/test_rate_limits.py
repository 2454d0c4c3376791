"""Per-connection rate limits on signaling actions: buckets in virtual time, and refusals through the real server."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from server.core.events import Error, ParticipantMediaState, ServerMessage, StatementAdded
from server.core.settings import Settings
from server.ratelimit import LIMITS, ConnectionLimits, TokenBucket
from server.rtc.testpeer import TestPeer
from tests.servers import RunningServer, running_server


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_refills() -> None:
    clock = Clock()
    bucket = TokenBucket(3, 0.5, clock)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(2.0), "one token comes back every 2 s"
    clock.now = 1.0
    assert bucket.take() == pytest.approx(1.0)
    clock.now = 2.0
    assert bucket.take() == 0.0
    clock.now = 100.0
    assert [bucket.take() for _ in range(4)][-1] > 0, "refills up to the burst, not beyond"


def test_limits_are_per_action_and_say_when_to_retry() -> None:
    clock = Clock()
    limits = ConnectionLimits(clock)
    burst = int(LIMITS["statement"][0])
    assert [limits.check("statement.add") for _ in range(burst)] == [None] * burst
    refusal = limits.check("statement.edit")
    assert refusal is not None and "statements" in refusal.message and "10 s" in refusal.message
    assert (refusal.code, refusal.reason, refusal.params) == ("rate_limited", "statement", {"seconds": 10})
    assert limits.check("vote") is None, "votes have their own budget"
    assert limits.check("ping") is None, "unlimited kinds pass (the flood limit counts them)"
    clock.now = 10.0
    assert limits.check("statement.add") is None
    assert limits.refused == 1


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("limits"), asr_backend="none", rtc_loopback_candidates=True,
                        llm_backend="none")
    with running_server(settings) as running:
        yield running


def refusals(peer: TestPeer) -> list[Error]:
    return [m for m in peer.messages if isinstance(m, Error) and m.code == "rate_limited"]


async def test_statement_flood_is_refused_and_nothing_is_stored(server: RunningServer) -> None:
    room = server.ctx.storage.create_room("Limits", 8).id
    ada, bo = TestPeer(server.ws(room), "Ada"), TestPeer(server.ws(room), "Bo")
    try:
        await ada.join()
        await bo.join()
        burst = int(LIMITS["statement"][0])
        for n in range(burst + 3):
            await ada.send({"type": "statement.add", "text": f"Statement number {n} about parks"})
        await ada.sync(30)
        await bo.sync(30)
        assert len(refusals(ada)) == 3 and "wait" in refusals(ada)[0].message
        first = refusals(ada)[0]  # (what the client words in its reader's language)
        assert first.reason == "statement" and isinstance(first.params["seconds"], int) and first.params["seconds"] >= 1
        assert len(server.ctx.storage.statements(room)) == burst, "refused statements are not stored"
        seen_by_bo = [m for m in bo.messages if isinstance(m, StatementAdded)]
        assert len(seen_by_bo) == burst and refusals(bo) == [], "the room sees only what was accepted"
        # Bo's own budget is untouched by Ada's flood.
        await bo.send({"type": "statement.add", "text": "Bo has a statement too"})
        await bo.wait_for(lambda m: isinstance(m, StatementAdded) and m.author_name == "Bo", 30)
    finally:
        await ada.close()
        await bo.close()


async def test_media_toggles_and_message_floods_are_limited(server: RunningServer) -> None:
    room = server.ctx.storage.create_room("Floods", 8).id
    # The buckets' clock stands still for these connections: nothing refills while the burst is sent, however slowly
    # a loaded machine sends it, so exactly the messages over the burst are refused.
    server.ctx.rate_clock = lambda: 0.0
    ada, bo = TestPeer(server.ws(room), "Ada"), TestPeer(server.ws(room), "Bo")
    try:
        await ada.join()
        await bo.join()
        burst = int(LIMITS["media"][0])
        for n in range(burst + 5):
            await ada.send({"type": "media", "audio": n % 2 == 0, "video": True})
        await ada.sync(30)
        await bo.sync(30)
        assert len(refusals(ada)) == 5
        assert len([m for m in bo.messages if isinstance(m, ParticipantMediaState)]) == burst

        flood = int(LIMITS["any"][0]) + 40
        for _ in range(flood):
            await ada.send({"type": "ping"})
        await ada.wait_for(lambda m: isinstance(m, Error) and m.code == "rate_limited" and "messages" in m.message,
                           30)
        still: list[ServerMessage] = list(bo.messages)
        await bo.sync(30)
        assert not [m for m in bo.messages[len(still):] if isinstance(m, Error)], "the bystander is undisturbed"
    finally:
        server.ctx.rate_clock = time.monotonic
        await ada.close()
        await bo.close()


def test_limits_table_names_every_limited_action() -> None:
    assert set(LIMITS) == {"statement", "vote", "flag", "media", "help", "any"}
    assert all(burst >= 1 and rate > 0 for burst, rate, _ in LIMITS.values())
