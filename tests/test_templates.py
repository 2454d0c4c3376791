"""Deliberation templates: the shipped ones are valid, and broken ones are refused with every problem named."""

from __future__ import annotations

from pathlib import Path

import pytest

from facilitator.template import StageKind, TemplateError, builtin_templates, load_template, parse_template


def minimal(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "id": "t1",
        "title": "T",
        "question": "Q?",
        "stages": [
            {"id": "talk", "kind": "discussion", "title": "Talk", "minutes": 10, "intro": "Let's talk."},
            {"id": "draft", "kind": "drafting", "title": "Draft", "minutes": 5, "intro": "Statements."},
            {"id": "vote", "kind": "voting", "title": "Vote", "minutes": 3, "intro": "Vote.", "time_warnings": [1]},
        ],
    }
    data.update(changes)
    return data


def test_shipped_templates() -> None:
    templates = builtin_templates()
    assert {"policy-40", "quick-20"} <= set(templates)
    policy = templates["policy-40"]
    assert policy.total_minutes == 40
    assert [s.kind for s in policy.stages] == [StageKind.WELCOME, StageKind.FRAMING, StageKind.DISCUSSION,
                                               StageKind.DRAFTING, StageKind.VOTING, StageKind.CLOSING]
    assert templates["quick-20"].total_minutes == 20
    for template in templates.values():
        assert template.question and template.background
        assert all(s.intro for s in template.stages)


def test_minimal_template_is_valid() -> None:
    template = parse_template(minimal())
    assert template.stage("vote").minutes == 3
    assert template.stages[0].warnings == [5.0, 1.0]
    assert template.stages[1].warnings == [1.0], "default warnings that do not fit a short stage are left out"


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"stages": []}, "stages"),
        ({"id": "Bad Id"}, "id"),
        ({"question": ""}, "question"),
        ({"extra": 1}, "extra"),
        ({"stages": [{"id": "a", "kind": "chat", "title": "A", "minutes": 5, "intro": "x"}]}, "stages.0.kind"),
        ({"stages": [{"id": "a", "kind": "discussion", "title": "A", "minutes": 0, "intro": "x"}]},
         "stages.0.minutes"),
        ({"stages": [{"id": "a", "kind": "discussion", "title": "A", "minutes": 4, "intro": "x",
                      "time_warnings": [5]}]}, "time_warnings"),
        ({"stages": [{"id": "a", "kind": "discussion", "title": "A", "minutes": 4, "intro": "x"},
                     {"id": "a", "kind": "closing", "title": "B", "minutes": 2, "intro": "y",
                      "time_warnings": [1]}]}, "repeated: a"),
        ({"stages": [{"id": "v", "kind": "voting", "title": "V", "minutes": 3, "intro": "x",
                      "time_warnings": [1]}]}, "drafting stage before it"),
    ],
)
def test_invalid_templates_name_the_problem(changes: dict[str, object], fragment: str) -> None:
    with pytest.raises(TemplateError) as info:
        parse_template(minimal(**changes), "my.yaml")
    assert "my.yaml" in str(info.value) and fragment in str(info.value)


def test_yaml_errors_say_where(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("id: x\nstages: [\n  - oops: : :\n", encoding="utf-8")
    with pytest.raises(TemplateError, match=r"broken\.yaml is not valid YAML at line \d+"):
        load_template(path)
    with pytest.raises(TemplateError, match="cannot read template"):
        load_template(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n", encoding="utf-8")
    with pytest.raises(TemplateError, match="mapping"):
        load_template(tmp_path / "list.yaml")


def test_question_placeholder_follows_a_rooms_override() -> None:
    from facilitator.engine import RoomFacilitator
    from server.core.events import AIMessage, ParticipantInfo, ParticipantJoined

    template = builtin_templates()["quick-20"]
    assert "{question}" in template.stages[1].intro
    room = template.model_copy(update={"question": "Should the park get a café?"})
    engine = RoomFacilitator("r", room)
    engine.handle(ParticipantJoined(room_id="r", participant=ParticipantInfo(participant_id="a", name="Ada")), 0.0)
    intros = [e for e in engine.tick(room.stages[0].minutes * 60) if isinstance(e, AIMessage)]
    assert intros and "The question is: Should the park get a café?" in intros[0].text
    assert "{" not in intros[0].text and "public services" not in intros[0].text


def test_unknown_placeholder_is_refused() -> None:
    stages = minimal()["stages"]
    assert isinstance(stages, list)
    stages[0] = {**stages[0], "intro": "Let's talk about {topic}."}
    with pytest.raises(TemplateError, match=r"stages\.0: unknown placeholder \{topic\}"):
        parse_template(minimal(stages=stages))
