"""Rejoining after a lost connection: the client sends back its resume ticket and the last room ``seq`` it saw, and
gets the room events it missed (no final caption lost in the gap), once; a stale connection is replaced; without a
valid ticket nothing is replayed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from server.core.events import CaptionFinal, Error, ParticipantLeft
from server.core.settings import Settings
from server.rtc.testpeer import TestPeer
from tests.servers import RunningServer, running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), asr_backend="none", rtc_loopback_candidates=True,
                        facilitator_enabled=False)
    with running_server(settings) as running:
        yield running


def final(room_id: str, n: int) -> CaptionFinal:
    return CaptionFinal(room_id=room_id, utterance_id=f"u{n}", participant_id="someone", speaker_name="Cy",
                        text=f"line {n}", start=float(n), end=float(n) + 0.5)


def is_final(n: int) -> object:
    return lambda m: isinstance(m, CaptionFinal) and m.utterance_id == f"u{n}"


def finals(peer: TestPeer) -> list[str]:
    return [m.utterance_id for m in peer.messages if isinstance(m, CaptionFinal)]


async def test_a_dropped_connection_rejoins_and_gets_what_it_missed_once(server: RunningServer) -> None:
    room = server.ctx.storage.create_room("Resume", 8).id
    ada, bo = TestPeer(server.ws(room), "Ada"), TestPeer(server.ws(room), "Bo")
    welcome = await ada.join()
    await bo.join()
    assert welcome.resume_token
    server.publish(final(room, 1))
    seen = await ada.wait_for(is_final(1), timeout=10)  # type: ignore[arg-type]
    await ada.close()  # the connection drops: no leave message
    await bo.wait_for(lambda m: isinstance(m, ParticipantLeft) and m.participant_id == ada.participant_id, 10)
    server.publish(final(room, 2))  # said while Ada was away
    server.publish(final(room, 3))
    await bo.wait_for(is_final(3), timeout=10)  # type: ignore[arg-type]

    again = TestPeer(server.ws(room), "Ada")
    await again.join(resume={"token": welcome.resume_token, "after_seq": seen.seq})  # type: ignore[union-attr]
    server.publish(final(room, 4))  # live after the rejoin: the marker
    await again.wait_for(is_final(4), timeout=10)  # type: ignore[arg-type]
    assert finals(again) == ["u2", "u3", "u4"]  # the missed ones first, in order, u1 not repeated
    seqs = [m.seq for m in again.messages if isinstance(m, CaptionFinal)]
    assert seqs == sorted(seqs)

    # The ticket was used up: joining with it again replays nothing.
    third = TestPeer(server.ws(room), "Ada 3")
    await third.join(resume={"token": welcome.resume_token, "after_seq": seen.seq})  # type: ignore[union-attr]
    server.publish(final(room, 5))
    await third.wait_for(is_final(5), timeout=10)  # type: ignore[arg-type]
    assert finals(third) == ["u5"]
    for peer in (again, third, bo):
        await peer.close()


async def test_rejoining_replaces_a_connection_the_server_still_holds(server: RunningServer) -> None:
    room = server.ctx.storage.create_room("Stale", 8).id
    ada = TestPeer(server.ws(room), "Ada")
    welcome = await ada.join()
    again = TestPeer(server.ws(room), "Ada")  # same name: accepted, because the ticket proves it is the same person
    rejoined = await again.join(resume={"token": welcome.resume_token})
    removed = await ada.wait_for(lambda m: isinstance(m, Error) and m.code == "reconnected", timeout=10)
    assert isinstance(removed, Error) and removed.code == "reconnected" and removed.fatal
    assert [p.name for p in rejoined.participants] == ["Ada"]
    assert rejoined.participant_id != ada.participant_id
    await again.close()
    await ada.close()


async def test_without_a_valid_ticket_nothing_is_replayed(server: RunningServer) -> None:
    room = server.ctx.storage.create_room("No ticket", 8).id
    other_room = server.ctx.storage.create_room("Elsewhere", 8).id
    elsewhere = TestPeer(server.ws(other_room), "Eve")
    foreign = await elsewhere.join()  # a real ticket, but for another room
    server.publish(final(room, 1))
    late: list[TestPeer] = []
    for token in ("made-up", foreign.resume_token):
        peer = TestPeer(server.ws(room), f"Late {len(late)}")
        await peer.join(resume={"token": token, "after_seq": 0})
        late.append(peer)
    server.publish(final(room, 2))
    for peer in late:
        await peer.wait_for(is_final(2), timeout=10)  # type: ignore[arg-type]
        assert finals(peer) == ["u2"]  # the earlier u1 was not replayed to someone who was never there
        await peer.close()
    await elsewhere.close()
