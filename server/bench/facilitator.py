"""``moot bench facilitator``: replay a scripted four-person session through the facilitator with the configured LLM.

The session (a deliberation template, people joining, talking in turns, one of them quiet) runs in virtual time through
the real ``FacilitatorService`` on an in-process bus. Reported: ``prompt_latency_p50_s`` (the moment a rule fires to the
message on the bus), ``summary_latency_p50_s`` (summary due to summary posted, dominated by the LLM),
``schema_valid_rate`` (LLM answers that matched the schema without falling back), and counts per message kind.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from typing import Any

from server.bench import print_result

SENTENCES = [
    "I think people should always be able to ask a human to review a decision.",
    "Speed matters too, families waiting for benefits cannot wait for months.",
    "We should know when an AI system was used and on what data.",
    "Maybe start with low risk uses and check the results every year.",
    "I am worried that mistakes will hit the people with the least time to complain.",
    "A public register of the systems would help journalists and councillors.",
]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "facilitator",
        help="replay a scripted session through the facilitator: prompt and summary latency, schema validity",
        description="Runs a four-person session in virtual time through the facilitator service.",
    )
    p.add_argument("--template", default="quick-20", help="deliberation template (default quick-20)")
    p.add_argument("--llm", choices=["fake", "local", "openai"], default="fake",
                   help="'fake' (scripted answers), 'local' (transformers: --llm-model-path, default the shipped "
                        "SmolLM2 GGUF) or 'openai' (an OpenAI-compatible endpoint: --llm-url)")
    p.add_argument("--llm-url", default=None, help="e.g. http://localhost:11434/v1")
    p.add_argument("--llm-model", default="default")
    p.add_argument("--llm-model-path", default=None, help="a .gguf file or a Hugging Face model directory")
    p.add_argument("--safety-review", choices=["on", "off"], default="on",
                   help="also run the model's safety review every few lines (default on)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=main)


def _scripted_answer(purpose: str, messages: Any) -> str:
    """Well-formed answers citing the first lines of the data, as a good model would."""
    data = messages[1]["content"]
    numbers = [int(line[1 : line.index("]")]) for line in data.splitlines() if line.startswith("[")] or [1]
    if purpose == "statements":
        return json.dumps({"statements": [{"text": "Public services should register every AI system they use so "
                                                   "that people can check them.", "lines": numbers[:2]}]})
    if purpose == "safety_review":
        return json.dumps({"flags": []})
    points = [{"kind": "point", "text": "People want human review of AI decisions.", "lines": numbers[:2]}]
    return json.dumps({"points": points})


async def run_facilitator_bench(template_id: str, llm_kind: str, llm_url: str | None, llm_model: str,
                                llm_model_path: str | None = None, safety_review: bool = True) -> dict[str, Any]:
    from facilitator.backends import create_llm
    from facilitator.llm import LLMBackend, LLMCallRecord, ScriptedLLM
    from facilitator.service import FacilitatorService
    from facilitator.template import Template, builtin_templates
    from server.core.bus import InProcessBus
    from server.core.clock import ManualClock
    from server.core.events import AIMessage, CaptionFinal, ParticipantInfo, ParticipantJoined, VoiceActivity

    template = builtin_templates()[template_id]
    llm: LLMBackend | None = (ScriptedLLM(_scripted_answer) if llm_kind == "fake"
                              else create_llm(llm_kind, llm_url, llm_model, None, 120.0, llm_model_path))
    assert llm is not None
    await llm.start()
    calls: list[LLMCallRecord] = []

    async def record(room_id: str, call: LLMCallRecord) -> None:
        calls.append(call)

    async def lookup(room_id: str) -> Template | None:
        return template

    bus = InProcessBus()
    clock = ManualClock(start=0.0)
    service = FacilitatorService(bus, lookup, clock, llm=llm, record_llm_call=record, llm_safety_review=safety_review)
    await service.start()
    sub = await bus.subscribe("room:*", maxsize=100_000)
    arrivals: list[tuple[float, AIMessage]] = []

    async def collect() -> None:
        async for event in sub:
            if isinstance(event, AIMessage):
                arrivals.append((time.perf_counter(), event))

    collector = asyncio.create_task(collect())
    lags: list[float] = []

    async def watch_loop() -> None:  # how late the event loop wakes: what media and captions would suffer
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - before - 0.005)

    watcher = asyncio.create_task(watch_loop())
    rng = random.Random(3)
    people = [("a", "Ada"), ("b", "Bo"), ("c", "Cy"), ("d", "Dee")]
    for pid, name in people:
        await bus.publish(ParticipantJoined(room_id="bench", participant=ParticipantInfo(participant_id=pid,
                                                                                          name=name)))
    step_wall: dict[int, float] = {}
    total = int(template.total_minutes * 60) + 5
    n = 0
    for second in range(total):
        if second % 20 == 5:
            pid, name = rng.choice(people[:3])  # Dee stays quiet
            await bus.publish(VoiceActivity(room_id="bench", participant_id=pid, speaking=True, t=clock.now()))
            await bus.publish(VoiceActivity(room_id="bench", participant_id=pid, speaking=False,
                                            t=clock.now() + 8))
            n += 1
            await bus.publish(CaptionFinal(room_id="bench", utterance_id=f"u{n}", participant_id=pid,
                                           speaker_name=name, text=rng.choice(SENTENCES), start=clock.now(),
                                           end=clock.now() + 8))
        step_wall[second + 1] = time.perf_counter()
        await clock.advance(1.0)
        await service.llm_idle()  # let summaries finish in (wall) time before virtual time moves on
    watcher.cancel()
    await sub.close()
    await collector
    await service.close()
    await llm.aclose()

    prompt_latencies = [wall - step_wall[max(1, min(int(m.ts + 0.999), total))] for wall, m in arrivals
                        if m.kind != "summary" and m.ts > 0]
    summary_latencies = [c.latency_s for c in calls if c.purpose == "summary"]
    kinds: dict[str, int] = {}
    for _, m in arrivals:
        kinds[m.kind] = kinds.get(m.kind, 0) + 1
    return {
        "template": template_id,
        "llm": f"{llm.name}:{llm.model}",
        "virtual_minutes": template.total_minutes,
        "messages": kinds,
        "prompt_latency_p50_s": round(statistics.median(prompt_latencies), 5) if prompt_latencies else None,
        "summary_latency_p50_s": round(statistics.median(summary_latencies), 3) if summary_latencies else None,
        "event_loop_lag_p99_ms": round(sorted(lags)[int(len(lags) * 0.99)] * 1000, 2) if lags else None,
        "event_loop_lag_max_ms": round(max(lags) * 1000, 1) if lags else None,
        "llm_calls": len(calls),
        "schema_valid_rate": round(sum(c.outcome == "ok" for c in calls) / len(calls), 3) if calls else None,
        "schema_valid_by_purpose": {
            purpose: f"{sum(c.outcome == 'ok' for c in calls if c.purpose == purpose)}/"
                     f"{sum(c.purpose == purpose for c in calls)}"
            for purpose in sorted({c.purpose for c in calls})
        },
        "llm_latency_p50_s_by_purpose": {
            purpose: round(statistics.median(c.latency_s for c in calls if c.purpose == purpose), 3)
            for purpose in sorted({c.purpose for c in calls})
        },
    }


def main(args: argparse.Namespace) -> int:
    result = asyncio.run(run_facilitator_bench(args.template, args.llm, args.llm_url, args.llm_model,
                                               args.llm_model_path, args.safety_review == "on"))
    print_result(result, args.json)
    return 0
