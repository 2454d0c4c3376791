"""``moot bench mt``: caption translation, as listeners get it.

Three measurements in one run, on the configured backend (``MOOT_MT_BACKEND``; the models registered with
``moot models import``), or with ``--synthetic opus-mt`` on random-weight models of a real OPUS-MT model's size
(6+6 layers, d_model 512, 58k vocabulary, CTranslate2 int8, beam 2; a word-level tokenizer, so a sentence takes
about as many tokens as with the real one) built locally, since no translation weights ship in a package: their
output always runs to the decoding cap (twice the input's tokens plus 10), so those latencies are an upper bound for
a real model of that size, whose translations end when the sentence does.

1. **Per caption**: each of the caption sentences translated alone, one after another: latency p50, p95, worst.
2. **Throughput**: the same sentences as fast as the backend takes them, in batches of ``--batch``: captions/s.
3. **In a room with three languages** (English speakers, French and German readers) on the in-process bus with the
   real translation worker: final captions are published at ``--rate`` per second (several speakers at once) for
   ``--seconds``; for each caption and each target language, the time from the caption's publication to its
   translation's arrival at a listener: the caption latency translation adds (p50, p95, and the worst second's
   worst), and how many translations each caption got (must be exactly one per target language). The peer, in the
   same run: the same room with batching off (one caption per model call), for CTranslate2 backends.
4. With ``--partials``: every caption is preceded by three provisional captions (0.4 s apart, the words so far), and
   the room runs twice side by side: the worker translating partials too (``MOOT_MT_PARTIALS``) and not. For each:
   the finals' added latency as in 3. (what translating partials costs the finals), and with partials the time from
   an utterance's first partial to the first translated words a reader sees, and how many utterances got any.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from server.bench.scoring import percentile

# Caption-length sentences of the kind a deliberation produces (8 to 25 words).
SENTENCES = [
    "I think the library should open on Sundays so that families can read together.",
    "We need more trees in the park and better lighting on the path at night.",
    "The buses do not run late enough for people who work evening shifts.",
    "Could we hear from someone who has not spoken yet about the housing question?",
    "My worry is that new homes near the station will push rents up for everyone else.",
    "If we build more cycle lanes, fewer parents will drive their children to school.",
    "I agree with the last point, but we should also think about older residents.",
    "The council should publish how it spends the money it raises from parking.",
    "A community garden would give young people something to do after school.",
    "We keep talking about cars, yet half of the households here do not own one.",
    "Let us vote on the statement about the library before we move on.",
    "I am not sure that a tax on empty homes would bring many of them back into use.",
    "The clinic is too far away for people without a car, which is unfair.",
    "Perhaps the market could move to the square on Saturdays to bring people into town.",
    "Noise from the new road is a real problem for the families who live beside it.",
    "We should ask the young people themselves what kind of youth centre they want.",
]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "mt",
        help="caption translation: per-caption latency, throughput, and the latency it adds in a 3-language room",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--synthetic", choices=["opus-mt", "tiny"], help="build random-weight models of this size for "
                   "en->fr and en->de instead of using the registered ones (see above)")
    p.add_argument("--rounds", type=int, default=3, help="times each sentence is translated for 1. and 2.")
    p.add_argument("--batch", type=int, default=8, help="batch size for the throughput measurement")
    p.add_argument("--rate", type=float, default=2.0, help="final captions per second in the room (3.)")
    p.add_argument("--seconds", type=float, default=20.0, help="length of the room measurement (3.)")
    p.add_argument("--partials", action="store_true", help="also measure translating provisional captions (4.)")
    p.add_argument("--data-dir", type=Path, help="data directory (default ./data)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from server.core.settings import Settings
    from server.translation.backends import TranslationUnavailable

    # The rest from the environment (MOOT_MT_BACKEND, MOOT_MT_MODELS_DIR, MOOT_MT_URL...).
    settings = Settings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    try:
        with tempfile.TemporaryDirectory(prefix="moot-bench-mt-") as scratch:
            if args.synthetic:
                settings = settings.model_copy(update={
                    "mt_backend": "ctranslate2", "mt_models_dir": _synthetic_registry(Path(scratch), args.synthetic)})
            result = asyncio.run(run(settings, args))
    except TranslationUnavailable as exc:
        print(f"error: {exc} (or measure random-weight models of a real size: --synthetic opus-mt)")
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print(result)
    return 0


def _synthetic_registry(root: Path, size: str) -> Path:
    from models.synthetic_translation import build_random_marian
    from models.translation import import_model

    registry = root / "registry"
    for target in ("fr", "de"):
        hf = build_random_marian(root / f"hf-en-{target}", size, "en", target, corpus=SENTENCES)
        import_model(hf, registry, name=f"random-{size}-en-{target}", sources=["en"], targets=[target])
    return registry


def _stats(values: list[float]) -> dict[str, float | None]:
    return {"p50_s": _round(percentile(values, 0.5)), "p95_s": _round(percentile(values, 0.95)),
            "worst_s": _round(max(values) if values else None)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


async def run(settings: Any, args: argparse.Namespace) -> dict[str, Any]:
    from server.translation.backends import TranslationUnavailable
    from server.workers.translation import create_translator

    translator = create_translator(settings)
    if translator is None:
        raise TranslationUnavailable(f"MOOT_MT_BACKEND={settings.mt_backend} gives no text translator: register a "
                                     f"model with `moot models import PATH`, or set MOOT_MT_URL")
    targets = [t for t in ("fr", "de") if translator.supports("en", t)]
    if not targets:
        raise TranslationUnavailable("the configured backend translates English into neither French nor German")
    result: dict[str, Any] = {"backend": translator.name, "labels": {t: translator.label("en", t) for t in targets},
                              "synthetic": args.synthetic, "targets": targets}
    try:
        started = time.perf_counter()
        await translator.translate([SENTENCES[0]], "en", targets[0])  # loads the model (not counted below)
        result["load_s"] = round(time.perf_counter() - started, 2)
        latencies = []
        for _ in range(args.rounds):
            for sentence in SENTENCES:
                started = time.perf_counter()
                await translator.translate([sentence], "en", targets[0])
                latencies.append(time.perf_counter() - started)
        result["per_caption"] = {**_stats(latencies), "captions": len(latencies)}
        batches = [SENTENCES[i:i + args.batch] for i in range(0, len(SENTENCES), args.batch)] * args.rounds
        started = time.perf_counter()
        for batch in batches:
            await translator.translate(batch, "en", targets[0])
        elapsed = time.perf_counter() - started
        result["throughput"] = {"batch": args.batch, "captions_per_s": round(sum(map(len, batches)) / elapsed, 2)}
        result["room"] = await _room(translator, targets, args.rate, args.seconds, with_partials=args.partials)
        if args.partials:
            result["room_partials"] = await _room(translator, targets, args.rate, args.seconds,
                                                  with_partials=True, translate_partials=True)
    finally:
        await translator.close()
    if hasattr(translator, "max_batch"):  # the peer, in the same run: the same room with one caption per model call
        peer: Any = create_translator(settings)
        peer.max_batch = 1
        try:
            await peer.translate([SENTENCES[0]], "en", targets[0])
            result["room_unbatched"] = await _room(peer, targets, args.rate, args.seconds)
        finally:
            await peer.close()
    return result


PARTIAL_STEP_S = 0.4  # provisional captions of an utterance, this far apart, then its final


class _Lent:
    """The translator as lent to one room's worker: closing the worker leaves it open for the next room."""

    def __init__(self, translator: Any) -> None:
        self._translator = translator

    def __getattr__(self, name: str) -> Any:
        return getattr(self._translator, name)

    async def close(self) -> None:
        return None


async def _room(translator: Any, targets: list[str], rate: float, seconds: float, with_partials: bool = False,
                translate_partials: bool = False) -> dict[str, Any]:
    """A room reading English and ``targets``: captions at ``rate``/s through the real translation worker (each
    preceded by three partials ``with_partials``, which the worker translates too if ``translate_partials``)."""
    from server.core.bus import InProcessBus, room_channel
    from server.core.events import CaptionFinal, CaptionPartial, CaptionTranslated, RoomLanguages
    from server.translation.service import TranslationService

    room = "bench-room"
    bus = InProcessBus()
    await bus.start()
    service = TranslationService(bus, _Lent(translator), partials=translate_partials)
    await service.start()
    published: dict[str, float] = {}  # utterance -> its final's publication
    first_partial: dict[str, float] = {}
    first_words: dict[str, float] = {}  # utterance -> first translated partial at a listener
    arrived: list[tuple[float, float]] = []  # (arrival time, latency)
    per_caption: dict[str, int] = {}
    listener = await bus.subscribe(room_channel(room), maxsize=100_000)
    total = max(1, int(rate * seconds))

    async def listen() -> None:
        expected = total * len(targets)
        while len(arrived) < expected:
            event = await listener.get(timeout=max(60.0, seconds * 4))
            if isinstance(event, CaptionTranslated):
                now = time.perf_counter()
                if event.partial:
                    first_words.setdefault(event.utterance_id, now)
                    continue
                arrived.append((now, now - published[event.utterance_id]))
                per_caption[event.utterance_id] = per_caption.get(event.utterance_id, 0) + 1

    # What is said, in time order: utterance n starts at n / rate (partials first, if any, then its final).
    steps = 3 if with_partials else 0
    plan: list[tuple[float, str, CaptionPartial | CaptionFinal]] = []
    for n in range(total):
        utterance, words = f"u{n}", SENTENCES[n % len(SENTENCES)].split()
        who: dict[str, Any] = {"room_id": room, "utterance_id": utterance, "participant_id": f"p{n % 4}",
                               "speaker_name": f"Speaker {n % 4}"}
        for k in range(steps):
            so_far = " ".join(words[:max(1, len(words) * (k + 1) // (steps + 1))])
            plan.append((n / rate + k * PARTIAL_STEP_S, "partial",
                         CaptionPartial(**who, committed=so_far, tentative="", start=float(n), language="en")))
        plan.append((n / rate + steps * PARTIAL_STEP_S, "final",
                     CaptionFinal(**who, text=" ".join(words), start=float(n), end=n + 3.0, language="en")))
    plan.sort(key=lambda step: step[0])

    try:
        await bus.publish(RoomLanguages(room_id=room, languages=["en", *targets]))
        listening = asyncio.create_task(listen())
        start = time.perf_counter()
        for at, kind, event in plan:
            await asyncio.sleep(max(0.0, start + at - time.perf_counter()))
            utterance = event.utterance_id
            if kind == "final":
                published[utterance] = time.perf_counter()
            else:
                first_partial.setdefault(utterance, time.perf_counter())
            await bus.publish(event)
        timed_out = False
        try:
            await listening
        except TimeoutError:
            timed_out = True
    finally:
        await listener.close()
        await service.close()
        await bus.close()
    latencies = [latency for _, latency in arrived]
    result: dict[str, Any] = {
        "languages": ["en", *targets], "captions": total, "rate_per_s": rate,
        "translations": len(arrived), "timed_out": timed_out,
        "once_per_language": all(per_caption.get(f"u{n}") == len(targets) for n in range(total)),
        "added_latency": _stats(latencies),
        "partials": "translated" if translate_partials else "published" if with_partials else "none",
    }
    if translate_partials:
        waits = [first_words[u] - first_partial[u] for u in first_words if u in first_partial]
        result["first_translated_words"] = {**_stats(waits), "utterances": len(waits),
                                            "partials_translated": service.partials_translated,
                                            "partials_skipped": service.partials_skipped}
    return result


def _print(result: dict[str, Any]) -> None:
    print(f"backend {result['backend']} ({', '.join(result['labels'].values())}); model load {result['load_s']} s"
          + (f"; random weights, size {result['synthetic']}: an upper bound" if result["synthetic"] else ""))
    per = result["per_caption"]
    print(f"per caption ({per['captions']}): p50 {per['p50_s']} s, p95 {per['p95_s']} s, worst {per['worst_s']} s")
    print(f"throughput: {result['throughput']['captions_per_s']} captions/s in batches of "
          f"{result['throughput']['batch']}")
    for label, key in (("room", "room"), ("room, unbatched (peer)", "room_unbatched"),
                       ("room, partials translated too", "room_partials")):
        if key not in result:
            continue
        room = result[key]
        added = room["added_latency"]
        print(f"{label} reading {', '.join(room['languages'])}: {room['captions']} captions at "
              f"{room['rate_per_s']}/s, {room['translations']} translations, once per language: "
              f"{room['once_per_language']}; added latency p50 {added['p50_s']} s, p95 {added['p95_s']} s, worst "
              f"{added['worst_s']} s")
        if "first_translated_words" in room:
            first = room["first_translated_words"]
            print(f"  first translated words after an utterance's first partial: p50 {first['p50_s']} s, p95 "
                  f"{first['p95_s']} s, worst {first['worst_s']} s ({first['utterances']} of {room['captions']} "
                  f"utterances; {first['partials_translated']} partial translations, {first['partials_skipped']} "
                  f"partials skipped)")
