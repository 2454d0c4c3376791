"""Speaking time per participant, from voice-activity events, and who to invite or ask to make room.

Only rules, no model: a facilitator that cannot be fooled about who has spoken. A participant who has been present for
a while and spoken well under their fair share is *quiet*; one holding far more than their share is *dominant*.
Cooldowns (per person and overall) keep the facilitator from nagging.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Speaker:
    participant_id: str
    name: str
    joined_at: float
    present: bool = True
    seconds: float = 0.0
    speaking_since: float | None = None
    last_nudged: float = float("-inf")

    def spoken(self, now: float) -> float:
        return self.seconds + (now - self.speaking_since if self.speaking_since is not None else 0.0)


@dataclass
class BalancePolicy:
    min_present_s: float = 120.0  # do not invite someone who has only just arrived
    quiet_share: float = 0.4  # below 40% of a fair share is quiet
    dominant_share: float = 2.0  # above twice a fair share ...
    dominant_min_fraction: float = 0.4  # ... and over 40% of all talk is dominant
    person_cooldown_s: float = 300.0
    room_cooldown_s: float = 120.0
    min_talk_s: float = 60.0  # judge balance only once the group has talked this long


@dataclass
class SpeakingBalanceTracker:
    policy: BalancePolicy = field(default_factory=BalancePolicy)
    speakers: dict[str, Speaker] = field(default_factory=dict)
    last_nudge: float = float("-inf")

    def join(self, participant_id: str, name: str, now: float) -> None:
        speaker = self.speakers.get(participant_id)
        if speaker is None:
            self.speakers[participant_id] = Speaker(participant_id, name, now)
        else:
            speaker.present = True

    def leave(self, participant_id: str, now: float) -> None:
        speaker = self.speakers.get(participant_id)
        if speaker is not None:
            self.voice(participant_id, False, now)
            speaker.present = False

    def voice(self, participant_id: str, speaking: bool, t: float) -> None:
        speaker = self.speakers.get(participant_id)
        if speaker is None:
            return
        if speaking and speaker.speaking_since is None:
            speaker.speaking_since = t
        elif not speaking and speaker.speaking_since is not None:
            speaker.seconds += max(0.0, t - speaker.speaking_since)
            speaker.speaking_since = None

    def totals(self, now: float) -> list[tuple[str, str, float]]:
        return [(s.participant_id, s.name, round(s.spoken(now), 1)) for s in self.speakers.values()]

    def _present(self) -> list[Speaker]:
        return [s for s in self.speakers.values() if s.present]

    def suggestion(self, now: float) -> tuple[str, Speaker] | None:
        """``("invite", quiet speaker)`` or ``("make_room", dominant speaker)`` when a nudge is due, else None.
        Calling it with a result records the nudge (cooldowns start)."""
        p = self.policy
        present = self._present()
        if len(present) < 2 or now - self.last_nudge < p.room_cooldown_s:
            return None
        total = sum(s.spoken(now) for s in present)
        if total < p.min_talk_s:
            return None
        fair = total / len(present)
        candidates: list[tuple[str, Speaker]] = []
        for s in sorted(present, key=lambda s: s.spoken(now)):
            if now - s.last_nudged < p.person_cooldown_s or s.speaking_since is not None:
                continue
            if now - s.joined_at >= p.min_present_s and s.spoken(now) < p.quiet_share * fair:
                candidates.append(("invite", s))
        for s in sorted(present, key=lambda s: -s.spoken(now)):
            share = s.spoken(now)
            if now - s.last_nudged < p.person_cooldown_s:
                continue
            if share > p.dominant_share * fair and share > p.dominant_min_fraction * total:
                candidates.append(("make_room", s))
        if not candidates:
            return None
        kind, speaker = candidates[0]
        speaker.last_nudged = now
        self.last_nudge = now
        return kind, speaker
