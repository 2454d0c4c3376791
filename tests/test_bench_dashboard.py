"""``moot bench dashboard``: the measurement's pure part, and a short run of the whole harness (a real server process
on a private Redis, two rooms, no browser) showing the dashboard receives every room's captions and the polling peer
is served."""

from __future__ import annotations

from pathlib import Path

from server.bench.dashboard import per_second_worst, run_dashboard_bench
from tests.private_redis import started_redis


def test_the_worst_second_counts_or_sums_per_bucket() -> None:
    assert per_second_worst([]) == 0.0
    assert per_second_worst([0.1, 0.5, 1.2, 1.3, 1.9]) == 3.0
    assert per_second_worst([0.1, 1.5, 1.6], [100.0, 10.0, 20.0]) == 100.0


async def test_a_short_run_pushes_every_room_and_serves_the_peer(tmp_path: Path) -> None:
    redis = started_redis(tmp_path)
    try:
        result = await run_dashboard_bench(rooms=2, people=3, seconds=4.0, redis_url=redis.url, browser=False)
    finally:
        redis.stop()
    push, poll = result["push"], result["poll_peer"]
    assert result["bus_events_per_s"] > 10
    assert push["messages"] > 0 and push["captions_seen"] >= 2, push
    assert push["caption_to_card_worst_s"] is not None and push["browser"] is None
    assert poll["requests"] >= 2 * 5 and poll["failed"] == 0, poll
