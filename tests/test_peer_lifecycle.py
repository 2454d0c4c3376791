"""A server-side peer whose media connection is gone reports that plainly, not as a server error."""

from __future__ import annotations

import asyncio

import pytest

from server.rtc.peer import NegotiationFailed, Peer


async def test_negotiating_on_a_closed_connection_is_a_lost_connection(caplog: pytest.LogCaptureFixture) -> None:
    """ICE consent expired under load closes the connection; the next renegotiation (someone joined) used to raise
    ``InvalidStateError`` with a traceback and remove the participant as an ``internal`` error."""
    failures: list[NegotiationFailed] = []
    failed = asyncio.Event()

    def on_failed(peer: Peer, failure: NegotiationFailed) -> None:
        failures.append(failure)
        failed.set()

    peer = Peer("p1", lambda message: None, 10, lambda peer, published: None, None)
    peer.on_failed = on_failed
    await peer.pc.close()  # what aiortc does when the ICE connection is lost
    peer.negotiate()
    await asyncio.wait_for(failed.wait(), 30)
    assert [f.code for f in failures] == ["media_failed"]
    assert not [r for r in caplog.records if r.levelname == "ERROR"], "no traceback for a lost connection"
    await peer.close()
