"""LocalAgreement commit policy: scripted hypotheses; committed words never change."""

from __future__ import annotations

import random

from server.asr.backends import Word
from server.asr.policy import LocalAgreement, join_words, normalise

REFERENCE = "we should build more homes near the station so that young people can stay".split()


def hyp(words: list[str], start: float = 0.0, step: float = 0.4) -> list[Word]:
    return [Word(" " + w, start + i * step, start + i * step + step * 0.9) for i, w in enumerate(words)]


def test_commits_only_what_two_hypotheses_agree_on() -> None:
    policy = LocalAgreement()
    assert policy.update(hyp(["we", "should", "bill"])) == []
    assert join_words(policy.tentative) == "we should bill"
    newly = policy.update(hyp(["we", "should", "build", "more"]))
    assert [w.text.strip() for w in newly] == ["we", "should"]
    assert join_words(policy.committed) == "we should"
    assert join_words(policy.tentative) == "build more"
    policy.update(hyp(["we", "should", "build", "more", "homes"]))
    assert join_words(policy.committed) == "we should build more"


def test_punctuation_and_case_still_agree() -> None:
    assert normalise(" Everyone.") == normalise("everyone,") == "everyone"
    policy = LocalAgreement()
    policy.update(hyp(["Hello", "everyone."]))
    policy.update(hyp(["hello", "everyone,", "I"]))
    assert normalise(join_words(policy.committed)) == "helloeveryone"  # the newer hypothesis's spelling is kept


def test_committed_words_never_change_under_random_hypotheses() -> None:
    rng = random.Random(1234)
    for _ in range(200):
        policy = LocalAgreement()
        previous: list[Word] = []
        for length in range(1, len(REFERENCE) + 1):
            words = list(REFERENCE[:length])
            for i in range(len(words)):  # perturb some words, more often near the end (as Whisper does)
                if rng.random() < 0.1 + 0.4 * (i >= length - 2):
                    words[i] = words[i] + rng.choice(["s", "ed", "?"])
            policy.update(hyp(words))
            assert policy.committed[: len(previous)] == previous, "committed words were rewritten"
            previous = list(policy.committed)
        final = policy.finish(hyp(REFERENCE))
        assert final[: len(previous)] == previous, "the final caption must begin with the committed words"


def test_boundary_word_repeated_with_shifted_times_is_not_duplicated() -> None:
    policy = LocalAgreement()
    policy.update(hyp(["near", "the", "station"]))
    policy.update(hyp(["near", "the", "station", "so"]))
    assert join_words(policy.committed) == "near the station"
    # The decoder re-emits "station" with a start slightly after the committed one's end.
    shifted = [*hyp(["near", "the"]), Word(" station", 1.0, 1.3), Word(" so", 1.3, 1.5), Word(" that", 1.5, 1.8)]
    policy.update(shifted)
    policy.update(shifted)
    assert join_words(policy.committed) == "near the station so that"


def test_finish_appends_final_remainder() -> None:
    policy = LocalAgreement()
    policy.update(hyp(["we", "should"]))
    policy.update(hyp(["we", "should", "bild"]))
    final = policy.finish(hyp(["we", "should", "build", "homes."]))
    assert join_words(final) == "we should build homes."


def test_finish_without_partials_is_the_final_hypothesis() -> None:
    assert join_words(LocalAgreement().finish(hyp(["just", "this"]))) == "just this"
