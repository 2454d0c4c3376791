"""The plain-language notice people read and consent to before they wait: what is recorded, the AI assistant, who
sees what, and how long it is kept. Its version is stored with each consent; change the version when the text
changes."""

from __future__ import annotations

NOTICE_VERSION = "2026-12-02b"  # b: machine translation


def notice_text(retention_days: int | None) -> list[str]:
    """The notice, one paragraph per item."""
    kept = (f"Transcripts are deleted {retention_days} days after the deliberation closes."
            if retention_days else "Transcripts are kept until the organisers delete them.")
    return [
        "What you say in your group is transcribed automatically, and the transcript is stored.",
        "An AI assistant takes part: it keeps time, invites quieter voices, summarises and drafts statements for the "
        "group to vote on. Its messages are always labelled, and people moderating can correct or stop it.",
        "Your group sees your name, video, voice and captions. The organisers and moderators of this deliberation "
        "can read transcripts, statements and votes; reports and exports use an alias instead of your name.",
        "What you say may be translated by machine for group members who read another language; translations are "
        "labelled as such and stored beside your words.",
        "A moderator may watch and listen to your group to help it; your room always shows when one is observing.",
        kept + " You can ask the organisers to delete what you said at any time.",
    ]
