"""LocalAgreement commit policy with scripted hypotheses: what commits when, and committed words never change."""

from __future__ import annotations

import random

import pytest

from server.asr.backends import Word
from server.asr.policy import LocalAgreement, join_words, normalise

REFERENCE = "we should build more homes near the station so that young people can stay in the town".split()
STEP = 0.4  # seconds per word in the scripted hypotheses


def hyp(words: list[str], start: float = 0.0, step: float = STEP) -> list[Word]:
    """Words one after another, each 90% of ``step`` long, as Whisper returns them (leading space)."""
    return [Word(" " + w, start + i * step, start + i * step + step * 0.9) for i, w in enumerate(words)]


def texts(words: list[Word]) -> list[str]:
    return [w.text.strip() for w in words]


# Normalisation and joining -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("a, b", [(" Everyone.", "everyone,"), ("HELLO", " hello!"), ("station.", "Station?"),
                                  (" don't", "Don't,"), ("Straße", "STRASSE"), ("ﬁne", "fine")])
def test_normalise_ignores_case_punctuation_and_spacing(a: str, b: str) -> None:
    assert normalise(a) == normalise(b)
    assert normalise(a)


def test_normalise_keeps_letters_that_differ() -> None:
    assert normalise("homes") != normalise("home")
    assert normalise("...") == normalise(" -- ") == ""


def test_join_words_keeps_whisper_spacing() -> None:
    assert join_words(hyp(["Hello", "everyone."])) == "Hello everyone."
    assert join_words([Word(" it", 0, 1), Word("'s", 1, 2), Word(" fine", 2, 3)]) == "it's fine"
    assert join_words([]) == ""


# Commit rules --------------------------------------------------------------------------------------------------------


def test_first_hypothesis_commits_nothing() -> None:
    policy = LocalAgreement()
    assert policy.update(hyp(["we", "should", "build"])) == []
    assert policy.committed == []
    assert texts(policy.tentative) == ["we", "should", "build"]


def test_commits_only_what_two_consecutive_hypotheses_agree_on() -> None:
    policy = LocalAgreement()
    policy.update(hyp(["we", "should", "bill"]))
    newly = policy.update(hyp(["we", "should", "build", "more"]))
    assert texts(newly) == ["we", "should"]
    assert join_words(policy.committed) == "we should"
    assert join_words(policy.tentative) == "build more"
    newly = policy.update(hyp(["we", "should", "build", "more", "homes"]))
    assert texts(newly) == ["build", "more"]
    assert join_words(policy.committed) == "we should build more"
    assert join_words(policy.tentative) == "homes"


def test_agreement_must_be_between_consecutive_hypotheses() -> None:
    """A word seen in hypotheses 1 and 3 but not 2 is not committed by hypothesis 3."""
    policy = LocalAgreement()
    policy.update(hyp(["we", "should"]))
    policy.update(hyp(["he", "would"]))
    assert policy.committed == []
    assert policy.update(hyp(["we", "should", "build"])) == []
    assert policy.committed == []
    assert texts(policy.update(hyp(["we", "should", "build"]))) == ["we", "should", "build"]


def test_disagreement_in_the_middle_stops_the_commit_there() -> None:
    policy = LocalAgreement()
    policy.update(hyp(["we", "should", "build", "more"]))
    policy.update(hyp(["we", "could", "build", "more"]))
    assert texts(policy.committed) == ["we"]
    assert texts(policy.tentative) == ["could", "build", "more"]


def test_punctuation_and_case_differences_still_agree() -> None:
    policy = LocalAgreement()
    policy.update(hyp(["Hello", "everyone."]))
    newly = policy.update(hyp(["hello", "everyone,", "I"]))
    assert [normalise(w.text) for w in newly] == ["hello", "everyone"]
    assert normalise(join_words(policy.committed)) == "helloeveryone"
    assert texts(policy.tentative) == ["I"]


def test_punctuation_only_tokens_never_commit() -> None:
    policy = LocalAgreement()
    policy.update([Word(" ...", 0.0, 0.3), Word(" yes", 0.3, 0.6)])
    assert policy.update([Word(" ...", 0.0, 0.3), Word(" yes", 0.3, 0.6)]) == []


def test_empty_hypothesis_keeps_what_is_committed() -> None:
    policy = LocalAgreement()
    policy.update(hyp(["we", "should"]))
    policy.update(hyp(["we", "should"]))
    committed = list(policy.committed)
    assert policy.update([]) == []
    assert policy.committed == committed
    assert policy.tentative == []


def test_committed_end_is_the_last_committed_word_end() -> None:
    policy = LocalAgreement()
    assert policy.committed_end == 0.0
    policy.update(hyp(["we", "should", "build"]))
    policy.update(hyp(["we", "should", "build"]))
    assert policy.committed_end == pytest.approx(2 * STEP + 0.9 * STEP)


def test_repeated_boundary_word_with_shifted_times_is_not_duplicated() -> None:
    policy = LocalAgreement()
    policy.update(hyp(["near", "the", "station"]))
    policy.update(hyp(["near", "the", "station", "so"]))
    assert join_words(policy.committed) == "near the station"
    end = policy.committed_end  # 1.16
    # The decoder re-emits "station" starting after the committed one ended, then goes on.
    shifted = [*hyp(["near", "the"]), Word(" station,", end + 0.02, end + 0.3), Word(" so", end + 0.3, end + 0.5),
               Word(" that", end + 0.5, end + 0.8)]
    policy.update(shifted)  # agrees with the previous tentative "so": commits it, after a single "station"
    assert join_words(policy.committed) == "near the station so"
    assert join_words(policy.tentative) == "that"
    policy.update(shifted)
    assert join_words(policy.committed) == "near the station so that"
    assert join_words(policy.finish(shifted)) == "near the station so that"


def test_repeated_boundary_words_overlapping_the_committed_end_are_not_duplicated() -> None:
    policy = LocalAgreement()
    policy.update(hyp(["near", "the", "station"]))
    policy.update(hyp(["near", "the", "station"]))
    end = policy.committed_end
    # "the station" again, straddling the committed end by less than the time tolerance.
    again = [Word(" the", end - 0.2, end + 0.05), Word(" station", end + 0.05, end + 0.4), Word(" today", end + 0.4,
                                                                                                end + 0.8)]
    policy.update(again)
    policy.update(again)
    assert join_words(policy.committed) == "near the station today"


def test_finish_begins_with_committed_words_and_appends_the_final_remainder() -> None:
    policy = LocalAgreement()
    policy.update(hyp(["we", "should"]))
    policy.update(hyp(["we", "should", "bild"]))
    committed = list(policy.committed)
    final = policy.finish(hyp(["We", "should", "build", "homes."]))
    assert final[: len(committed)] == committed  # the committed spelling is kept, not the final's "We"
    assert join_words(final) == "we should build homes."


def test_finish_keeps_committed_words_even_if_the_final_decode_disagrees_or_is_empty() -> None:
    policy = LocalAgreement()
    policy.update(hyp(["we", "should", "build"]))
    policy.update(hyp(["we", "should", "build", "more"]))
    assert join_words(policy.finish(hyp(["he", "would", "bill"]))) == "we should build"
    assert join_words(policy.finish([])) == "we should build"
    assert join_words(policy.committed) == "we should build", "finish does not change the policy"


def test_finish_without_partials_is_the_final_hypothesis() -> None:
    assert join_words(LocalAgreement().finish(hyp(["just", "this."]))) == "just this."
    assert LocalAgreement().finish([]) == []


# Properties over random hypotheses -----------------------------------------------------------------------------------


def perturbed(rng: random.Random, length: int, serial: int) -> list[Word]:
    """A hypothesis of the first ``length`` reference words, perturbed as Whisper's re-decodes are: words garbled
    (more often near the end), dropped or inserted, case and punctuation changed, times jittered, or cut short."""
    words: list[str] = []
    for i, word in enumerate(REFERENCE[:length]):
        near_end = i >= length - 2
        r = rng.random()
        if r < 0.05:
            continue  # dropped
        if r < 0.1:
            words.append("um")  # inserted
        if rng.random() < 0.1 + 0.4 * near_end:
            word = word + rng.choice(["s", "ed", "?", f"x{serial}"])
        if rng.random() < 0.2:
            word = word.capitalize() + rng.choice([".", ",", ""])
        words.append(word)
    if words and rng.random() < 0.1:
        words = words[: rng.randrange(len(words))]  # a shorter hypothesis than the last
    out = []
    for i, w in enumerate(words):
        jitter = rng.uniform(-0.1, 0.1)
        out.append(Word(" " + w, max(0.0, i * STEP + jitter), i * STEP + 0.9 * STEP + jitter))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_committed_words_never_change_or_disappear(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(100):
        policy = LocalAgreement()
        previous: list[Word] = []
        lengths = sorted(rng.randint(1, len(REFERENCE)) for _ in range(rng.randint(1, 25)))
        for serial, length in enumerate(lengths):
            newly = policy.update(perturbed(rng, length, serial))
            assert policy.committed == previous + newly, "committed words were rewritten or removed"
            ends = [w.end for w in policy.committed]
            assert ends == sorted(ends) and len(set(ends)) == len(ends), "committed words go back in time"
            previous = list(policy.committed)
        for final in (perturbed(rng, len(REFERENCE), -1), hyp(REFERENCE), []):
            words = policy.finish(final)
            assert words[: len(previous)] == previous, "the final caption must begin with the committed words"
        assert policy.committed == previous


@pytest.mark.parametrize("seed", range(5))
def test_no_word_lost_or_duplicated_when_garbles_never_agree(seed: int) -> None:
    """Growing hypotheses of the reference with unique garbles (never agreed on twice), case and punctuation
    changes and small time jitter: the final caption is exactly the reference, whatever was committed on the way."""
    rng = random.Random(1000 + seed)
    for _ in range(100):
        policy = LocalAgreement()
        for serial, length in enumerate(range(1, len(REFERENCE) + 1)):
            words = []
            for i, word in enumerate(REFERENCE[:length]):
                if rng.random() < 0.1 + 0.5 * (i == length - 1):
                    word = f"{word}x{serial}"
                if rng.random() < 0.2:
                    word = word.upper() + rng.choice([".", ",", "!"])
                words.append(word)
            jittered = [Word(w.text, max(0.0, w.start + rng.uniform(-0.05, 0.05)), w.end + rng.uniform(-0.05, 0.05))
                        for w in hyp(words)]
            policy.update(jittered)
            assert [normalise(w.text) for w in policy.committed] == REFERENCE[: len(policy.committed)]
        final = policy.finish(hyp(REFERENCE))
        assert [normalise(w.text) for w in final] == REFERENCE


def test_a_genuinely_repeated_word_at_the_commit_boundary_is_kept() -> None:
    reference = "I think that that is right".split()
    policy = LocalAgreement()
    policy.update(hyp(reference[:3]))
    policy.update(hyp(reference[:4]))  # commits "I think that"; the second "that" is tentative
    for n in (5, 6, 6):
        policy.update(hyp(reference[:n]))
    assert join_words(policy.finish(hyp(reference))) == "I think that that is right"
