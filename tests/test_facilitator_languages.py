"""The facilitator speaks the room's language: its rule messages are keys with parameters in five languages, the
engine says them in the language most present participants read, and the translation worker gives readers of the
other languages the same message from their own table (rule messages) or machine translated (the rest)."""

from __future__ import annotations

import re

import pytest

from facilitator.engine import RoomFacilitator
from facilitator.messages import MESSAGES, duration, say
from facilitator.template import Template, TemplateError, builtin_templates, parse_template
from server.core.bus import InProcessBus, room_channel
from server.core.events import (
    AIMessage,
    AIMessagePoint,
    AIMessageTranslated,
    ParticipantInfo,
    ParticipantJoined,
    ParticipantLanguage,
    RoomLanguages,
    StageChanged,
)
from server.translation.backends import ScriptedTranslator
from server.translation.service import TranslationService
from server.workers.translation import render_rule_message
from tests.test_engine import messages, simulate

ROOM = "room-lang"


def placeholders(text: str) -> set[str]:
    return set(re.findall(r"\{(\w+)\}", text))


@pytest.mark.parametrize("language", sorted(set(MESSAGES) - {"en"}))
def test_every_language_has_every_message_with_the_same_parameters(language: str) -> None:
    assert set(MESSAGES[language]) == set(MESSAGES["en"])
    for key, english in MESSAGES["en"].items():
        assert placeholders(MESSAGES[language][key]) == placeholders(english), (language, key)
        assert MESSAGES[language][key].strip()


def test_durations_and_parameters_are_said_per_language() -> None:
    assert duration("fr", 1) == "une minute" and duration("de", 5) == "5 Minuten" and duration("nl", 0.5) == \
        "30 seconden"
    assert say("fr", "time.left", minutes=2, stage="Débat") == "Il reste 2 minutes pour \u00ab\u00a0Débat\u00a0\u00bb."
    assert say("en", "time.left", minutes=1, stage="Debate") == 'One minute left for "Debate".'
    assert say("pt", "closing") == say("en", "closing")  # no table: English


def joined(pid: str, language: str | None) -> ParticipantJoined:
    return ParticipantJoined(room_id=ROOM, participant=ParticipantInfo(participant_id=pid, name=pid.title(),
                                                                       language=language))


def test_the_engine_speaks_the_language_most_participants_read() -> None:
    engine = RoomFacilitator(ROOM, builtin_templates()["quick-20"])
    out = simulate(engine, [(0.0, joined("ada", "fr")), (1.0, joined("bo", "fr")), (2.0, joined("cy", "en"))],
                   until=200)
    rules = [m for m in messages(out) if m.key is not None]
    assert rules, "no rule message"
    intro = next(m for m in rules if m.kind == "stage_intro")
    # The first intro came when Ada alone was there (French); all rule messages are French, keyed for translation.
    assert all(m.language == "fr" for m in rules)
    assert intro.key == "stage_intro" and intro.text == say("fr", "stage_intro", **intro.params)
    silence = [m for m in rules if m.kind == "silence"]
    assert silence and silence[0].text == say("fr", "silence")
    # The template's own words come from its French translation: the stage's title and intro, and its questions.
    french = builtin_templates()["quick-20"].localised("fr")
    assert french.stages[0].intro in intro.text and intro.text.startswith(french.stages[0].title)
    questions = messages(out, "question")
    assert questions and all(m.language == "fr" and m.key == "ask" for m in questions)
    assert questions[0].text == french.say(french.stage("discussion").questions[0])
    stages = [e for e in out if isinstance(e, StageChanged)]
    assert stages[0].title == french.stages[0].title and stages[0].titles["de"] == "Willkommen"

    # Two more English readers arrive: the room reads English now (3 en : 2 fr).
    later = simulate(engine, [(300.0, joined("dee", "en")), (301.0, joined("eli", "en"))], until=2000)
    assert {m.language for m in messages(later) if m.key is not None and m.ts > 301} == {"en"}
    # A tie goes to the template's language (English); a language Moot has no table for does not count.
    tie = RoomFacilitator(ROOM, builtin_templates()["quick-20"])
    tie.handle(joined("a", "fr"), 0.0)
    tie.handle(joined("b", "en"), 0.0)
    tie.handle(joined("c", "sw"), 0.0)
    assert tie.language == "en"
    tie.handle(ParticipantLanguage(room_id=ROOM, participant_id="c", language="fr"), 1.0)
    assert tie.language == "fr"


def untranslated_template() -> Template:
    """quick-20 as an organiser's own template would be: English only."""
    return builtin_templates()["quick-20"].model_copy(update={"translations": {}})


def test_a_template_without_the_room_s_language_keeps_its_own_words() -> None:
    """A room reads French but the template has no French: rule messages are French around the template's English
    words, its questions stay English and say so; the translation worker machine translates such messages for other
    readers rather than mixing two languages from its tables, and renders them where the template has the words."""
    engine = RoomFacilitator(ROOM, untranslated_template())
    out = simulate(engine, [(0.0, joined("ada", "fr"))], until=200)
    intro = next(m for m in messages(out) if m.kind == "stage_intro")
    assert intro.language == "fr" and intro.params["stage"] == {"en": "Welcome"}
    assert all(m.language == "en" and m.key == "ask" for m in messages(out, "question"))
    assert render_rule_message("de", intro.key or "", dict(intro.params)) is None
    assert render_rule_message("en", intro.key or "", dict(intro.params)) == say("en", "stage_intro", **intro.params)
    translated = RoomFacilitator(ROOM, builtin_templates()["quick-20"])
    keyed = next(m for m in messages(simulate(translated, [(0.0, joined("ada", "fr"))], until=10))
                 if m.kind == "stage_intro")
    german = render_rule_message("de", keyed.key or "", dict(keyed.params))
    assert german is not None and german.startswith("Willkommen (2 Minuten). Willkommen. Ich bin der KI-Assistent")


def test_template_translations_are_checked_and_a_room_s_question_wins() -> None:
    base = builtin_templates()["quick-20"].model_dump()
    bad = {
        "nosuch": {"fr": {"stages": {"nosuch": {"title": "X"}}}},
        "questions": {"fr": {"stages": {"discussion": {"questions": ["Une seule ?"]}}}},
        "{who}": {"fr": {"stages": {"discussion": {"intro": "Bonjour {who}"}}}},
        "base language code": {"en": {"title": "Same language"}},
    }
    for needle, translations in bad.items():
        with pytest.raises(TemplateError, match=re.escape(needle)):
            parse_template({**base, "translations": translations})
    own = builtin_templates()["quick-20"].with_question("Should the park get more trees?")
    assert own.localised("fr").question == "Should the park get more trees?"
    assert "Should the park get more trees?" in own.texts(lambda t: t.say(t.stage("discussion").intro))["fr"]
    assert own.localised("fr").stage("discussion").title == "Discussion" and own.localised("de").stages[0].title \
        == "Willkommen"


async def test_ai_messages_reach_each_reader_in_their_language(bus: InProcessBus) -> None:
    translator = ScriptedTranslator(pairs={("fr", "en"), ("fr", "sw")})
    service = TranslationService(bus, translator, render=render_rule_message)
    await service.start()
    try:
        await bus.publish(RoomLanguages(room_id=ROOM, languages=["en", "fr", "sw"]))
        rule = AIMessage(room_id=ROOM, message_id="m1", kind="time", language="fr", key="time.left",
                         params={"minutes": 2, "stage": "Débat"}, text=say("fr", "time.left", minutes=2, stage="Débat"))
        summary = AIMessage(room_id=ROOM, message_id="m2", kind="summary", language="fr", text="Résumé",
                            points=[AIMessagePoint(label="1", text="Plus d'arbres", sources=["u1"])])
        await bus.publish(rule)
        await bus.publish(summary)
        await service.wait_translated(4, timeout=10)
        got = {(e.message_id, e.language): e for e in await bus.history(room_channel(ROOM))
               if isinstance(e, AIMessageTranslated)}
        assert set(got) == {("m1", "en"), ("m1", "sw"), ("m2", "en"), ("m2", "sw")}
        assert got["m1", "en"].text == '2 minutes left for "Débat".'  # from the English table, not translated
        assert not got["m1", "en"].machine and got["m1", "en"].backend == "facilitator"
        assert got["m1", "sw"].machine and got["m1", "sw"].text.startswith("[sw] ")  # no Swahili table: MT
        assert got["m2", "en"].text == "[en] Résumé" and got["m2", "en"].points == ["[en] Plus d'arbres"]
        assert got["m2", "en"].machine
    finally:
        await service.close()


async def test_the_model_is_asked_to_write_in_the_room_s_language() -> None:
    from facilitator.llm import ScriptedLLM
    from facilitator.summaries import write_summary
    from server.core.events import CaptionFinal

    llm = ScriptedLLM({"summary": '{"points": [{"kind": "agreement", "text": "Plus d\'arbres", "lines": [1]}]}'})
    caption = CaptionFinal(room_id=ROOM, utterance_id="u1", participant_id="ada", speaker_name="Ada",
                           text="Il faut planter des arbres", start=0.0, end=2.0, language="fr")
    message = await write_summary(llm, ROOM, "s1", [caption], 10.0, "m-summary", language="fr")
    assert message is not None and message.language == "fr"
    [(_, prompt)] = llm.calls
    assert "Écris en français." in prompt[0]["content"]
    assert message.text.startswith(say("fr", "summary.heading")) and "- Accord: Plus d'arbres" in message.text
    assert message.points[0].label == "Accord" and message.points[0].sources == ["u1"]
