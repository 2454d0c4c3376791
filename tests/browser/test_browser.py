"""Real headless Chromium pages against the real server: join, video, live captions, refused devices, keyboard.

The scenario (scenario.py) runs in a private network namespace (``unshare -rn`` with loopback up) so all WebRTC
traffic stays on 127.0.0.1. The namespace's default route points at loopback: without camera/microphone permission
Chromium gathers ICE candidates only on the default-route interface.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"


def padded_wav(path: Path, source: Path | None, silence_s: float) -> Path:
    """``source`` followed by ``silence_s`` of silence (Chromium loops the fake microphone file)."""
    frames = b""
    if source is not None:
        with wave.open(str(source), "rb") as r:
            assert (r.getframerate(), r.getnchannels(), r.getsampwidth()) == (16000, 1, 2)
            frames = r.readframes(r.getnframes())
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(frames + b"\0\0" * int(16000 * silence_s))
    return path


@pytest.mark.slow
def test_two_browsers_see_each_other_and_captions(tmp_path: Path) -> None:
    for tool in ("chromium", "unshare", "ip"):
        assert shutil.which(tool), f"{tool} is required for the browser test (./scripts/test installs it)"
    speech = padded_wav(tmp_path / "speech.wav", DATA / "hello16.wav", 2.0)
    silence = padded_wav(tmp_path / "silence.wav", None, 2.0)
    shot = tmp_path / "room.png"
    command = (f"ip link set lo up && ip route add default dev lo && exec {sys.executable} -m tests.browser.scenario "
               f"{speech} {silence} {shot}")
    proc = subprocess.run(["unshare", "-rn", "sh", "-c", command], cwd=REPO, capture_output=True, text=True,
                          timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])

    assert "/r/" in result["landing_link"]
    assert result["bo_sees_ada_video"] and result["ada_sees_bo_video"]
    transcript = result["bo_transcript"].lower()
    assert "ada" in transcript and "think we should" in transcript and "station" in transcript
    assert result["bo_ai_badges"] and set(result["bo_ai_badges"]) == {"AI"}, "every AI message is labelled"
    assert result["bo_stage"].startswith("Welcome / ") and "left" in result["bo_stage"]
    assert "AI assistant" in result["bo_ai_first"]
    assert "Ada" in result["bo_balance"] and "Bo" in result["bo_balance"]
    assert "Proposed by Bo" in result["bo_statement"] and "1 agree" in result["bo_statement"]
    assert result["ada_vote_pressed"] == "true"
    blocked = result["blocked_message"].lower()
    assert "camera is blocked" in blocked and "still join" in blocked and "microphone is ready" in blocked
    assert result["join_disabled_without_consent"] and result["join_enabled_with_consent"]
    assert result["cy_sees_ada_video"], (result["cy_status"], result["cy_tiles"])
    assert result["cy_mic_button"] == "Microphone on" and result["cy_cam_button"] == "No camera"
    assert result["bo_mic_pressed_after_toggle"] == "false"
    assert result["ada_sees_bo_muted"]
    assert shot.stat().st_size > 10_000
