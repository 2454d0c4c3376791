"""Translation models for CTranslate2: a registry in one directory, and the import that fills it.

A registered model is a directory under the registry (``<data dir>/models/mt`` by default) holding a CTranslate2
model (``model.bin``, ``config.json``, vocabularies), the tokenizer files of the Hugging Face model it was converted
from, and ``moot-model.json``, the manifest Moot reads::

    {"name": "opus-mt-en-fr", "family": "marian", "sources": ["en"], "targets": ["fr"],
     "licence": "CC-BY-4.0", "quantization": "int8", "converted_from": "/path/to/hf/opus-mt-en-fr"}

Families: ``marian`` (OPUS-MT: one language pair per model), ``m2m100`` (M2M100: many languages, codes ``__fr__``)
and ``nllb`` (NLLB-200: many languages, FLORES codes such as ``fra_Latn``; its licence, CC-BY-NC-4.0, forbids
commercial use). ``import_model`` converts a local Hugging Face model directory with CTranslate2's own converter;
nothing is ever downloaded.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

MANIFEST = "moot-model.json"
FAMILIES = ("marian", "m2m100", "nllb")
LICENCES = {"marian": "CC-BY-4.0 (OPUS-MT)", "m2m100": "MIT", "nllb": "CC-BY-NC-4.0 (non-commercial use only)"}
# Tokenizer and side files copied next to the converted model, where present (AutoTokenizer loads from them).
TOKENIZER_FILES = ("tokenizer_config.json", "special_tokens_map.json", "vocab.json", "source.spm", "target.spm",
                   "sentencepiece.bpe.model", "tokenizer.json", "generation_config.json")

# ISO 639-1 codes and NLLB-200's FLORES-200 codes, for the languages people most often ask for. NLLB knows 200; add
# the code here to offer another.
NLLB_CODES = {
    "ar": "arb_Arab", "bg": "bul_Cyrl", "ca": "cat_Latn", "cs": "ces_Latn", "da": "dan_Latn", "de": "deu_Latn",
    "el": "ell_Grek", "en": "eng_Latn", "es": "spa_Latn", "et": "est_Latn", "fa": "pes_Arab", "fi": "fin_Latn",
    "fr": "fra_Latn", "ga": "gle_Latn", "he": "heb_Hebr", "hi": "hin_Deva", "hr": "hrv_Latn", "hu": "hun_Latn",
    "id": "ind_Latn", "it": "ita_Latn", "ja": "jpn_Jpan", "ko": "kor_Hang", "lt": "lit_Latn", "lv": "lvs_Latn",
    "mt": "mlt_Latn", "nl": "nld_Latn", "no": "nob_Latn", "pl": "pol_Latn", "pt": "por_Latn", "ro": "ron_Latn",
    "ru": "rus_Cyrl", "sk": "slk_Latn", "sl": "slv_Latn", "sv": "swe_Latn", "sw": "swh_Latn", "tr": "tur_Latn",
    "uk": "ukr_Cyrl", "ur": "urd_Arab", "vi": "vie_Latn", "zh": "zho_Hans",
}


class TranslationModelError(RuntimeError):
    """A translation model cannot be imported or used; the message says what to do."""


@dataclass(frozen=True)
class TranslationModel:
    """A registered model (its manifest and where it lives)."""

    name: str
    family: str
    sources: list[str]
    targets: list[str]
    path: Path
    licence: str = ""
    quantization: str = "int8"
    converted_from: str = ""
    size_bytes: int = 0
    extra: dict[str, object] = field(default_factory=dict)

    def supports(self, source: str, target: str) -> bool:
        return source != target and source in self.sources and target in self.targets


def base_language(code: str) -> str:
    """``pt-BR`` -> ``pt``: models are chosen by the base language."""
    return code.split("-", 1)[0].lower()


def _directory_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def load_manifest(path: Path) -> TranslationModel:
    try:
        data = json.loads((path / MANIFEST).read_text())
        return TranslationModel(name=str(data["name"]), family=str(data["family"]),
                                sources=[str(x) for x in data["sources"]], targets=[str(x) for x in data["targets"]],
                                path=path, licence=str(data.get("licence", "")),
                                quantization=str(data.get("quantization", "")),
                                converted_from=str(data.get("converted_from", "")),
                                size_bytes=_directory_size(path))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TranslationModelError(f"{path / MANIFEST} is not a valid Moot model manifest ({exc}): import the "
                                    f"model again with `moot models import`") from None


def registered_models(registry: Path) -> list[TranslationModel]:
    """The models registered in ``registry`` (a directory with a manifest each), by name; broken entries are
    skipped with a warning (``check_models`` reports them)."""
    if not registry.is_dir():
        return []
    found = []
    for entry in sorted(registry.iterdir()):
        if (entry / MANIFEST).is_file():
            try:
                found.append(load_manifest(entry))
            except TranslationModelError as exc:
                logger.warning("%s", exc)
    return found


def check_models(registry: Path) -> list[tuple[str, TranslationModel | None, str | None]]:
    """Each registered model's name, the model (None: its manifest is unreadable) and the problem found (None: it is
    complete). Does not load the models."""
    results: list[tuple[str, TranslationModel | None, str | None]] = []
    if not registry.is_dir():
        return results
    for entry in sorted(registry.iterdir()):
        if not (entry / MANIFEST).is_file():
            continue
        try:
            model = load_manifest(entry)
        except TranslationModelError as exc:
            results.append((entry.name, None, str(exc)))
            continue
        missing = [name for name in ("model.bin", "config.json") if not (entry / name).is_file()]
        if not any((entry / name).is_file() for name in ("tokenizer_config.json", "tokenizer.json")):
            missing.append("tokenizer_config.json")
        if model.family not in FAMILIES:
            results.append((model.name, model, f"unknown family {model.family!r}"))
        elif missing:
            results.append((model.name, model, f"missing {', '.join(missing)}: import it again"))
        else:
            results.append((model.name, model, None))
    return results


def _detect_family(source: Path) -> str:
    try:
        config = json.loads((source / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise TranslationModelError(f"{source} is not a Hugging Face model directory (config.json: {exc})") from None
    model_type = config.get("model_type")
    if model_type == "marian":
        return "marian"
    if model_type == "m2m_100":
        tokenizer_class = ""
        if (source / "tokenizer_config.json").is_file():
            tokenizer_class = str(json.loads((source / "tokenizer_config.json").read_text()).get("tokenizer_class"))
        return "nllb" if "nllb" in tokenizer_class.lower() or "nllb" in source.name.lower() else "m2m100"
    raise TranslationModelError(f"{source}: model type {model_type!r} is not a translation model Moot can use "
                                f"(OPUS-MT/Marian, M2M100 or NLLB-200)")


def _languages(family: str, source: Path, sources: list[str] | None,
               targets: list[str] | None) -> tuple[list[str], list[str]]:
    if sources and targets:
        return sorted({base_language(x) for x in sources}), sorted({base_language(x) for x in targets})
    if family == "marian":
        parts = source.name.split("-")  # opus-mt-en-fr
        if len(parts) >= 4 and parts[0] == "opus" and parts[1] == "mt" and len(parts[2]) <= 3 \
                and len(parts[3]) <= 3:
            return [parts[2]], [parts[3]]
        raise TranslationModelError(f"say which languages {source.name} translates: --source xx --target yy "
                                    f"(an OPUS-MT model's directory name, e.g. opus-mt-en-fr, says it too)")
    if family == "nllb":
        languages = sorted(NLLB_CODES)
        return languages, languages
    languages = _m2m100_languages(source)
    return languages, languages


def _m2m100_languages(source: Path) -> list[str]:
    """M2M100's language codes (``__fr__`` tokens in its vocabulary)."""
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        path = source / name
        if path.is_file():
            text = path.read_text()
            codes = sorted(set(re.findall(r'"__([a-z]{2,3})__"', text)))
            if codes:
                return codes
    raise TranslationModelError(f"{source}: cannot find M2M100's language codes; give --source and --target")


def import_model(source: Path, registry: Path, name: str | None = None, sources: list[str] | None = None,
                 targets: list[str] | None = None, quantization: str = "int8",
                 progress: Callable[[str, int, int], None] | None = None, force: bool = False) -> TranslationModel:
    """Convert the Hugging Face model directory ``source`` to CTranslate2 into ``registry/<name>`` and register it.
    ``progress(step, done, total)`` is told each step. Raises ``TranslationModelError`` with what to do."""
    source = source.expanduser().resolve()
    if not source.is_dir():
        raise TranslationModelError(f"{source} is not a directory: give a local Hugging Face model directory "
                                    f"(e.g. from `git clone https://huggingface.co/Helsinki-NLP/opus-mt-en-fr`)")
    family = _detect_family(source)
    source_languages, target_languages = _languages(family, source, sources, targets)
    name = name or source.name
    target = registry / name
    if target.exists() and not force:
        raise TranslationModelError(f"a model called {name!r} is already registered ({target}): give another "
                                    f"--name, or --force to replace it")
    steps = 4
    report = progress or (lambda step, done, total: None)
    try:
        import ctranslate2.converters
    except ImportError as exc:  # pragma: no cover - ctranslate2 is a dependency
        raise TranslationModelError(f"converting needs ctranslate2 ({exc}): pip install ctranslate2") from None
    registry.mkdir(parents=True, exist_ok=True)
    staging = registry / f".{name}.importing"
    shutil.rmtree(staging, ignore_errors=True)
    started = time.monotonic()
    report("reading the model and converting it to CTranslate2", 0, steps)
    copy = [f for f in TOKENIZER_FILES if (source / f).is_file()]
    try:
        converter = ctranslate2.converters.TransformersConverter(str(source), copy_files=copy)
        converter.convert(str(staging), quantization=quantization or None, force=True)
    except Exception as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise TranslationModelError(f"CTranslate2 could not convert {source}: {exc}") from None
    report("checking the tokenizer", 1, steps)
    if not any((staging / f).is_file() for f in ("tokenizer_config.json", "tokenizer.json")):
        shutil.rmtree(staging, ignore_errors=True)
        raise TranslationModelError(f"{source} has no tokenizer files (tokenizer_config.json): copy them in too")
    report("writing the manifest", 2, steps)
    manifest = {"name": name, "family": family, "sources": source_languages, "targets": target_languages,
                "licence": LICENCES[family], "quantization": quantization, "converted_from": str(source),
                "converted_in_s": round(time.monotonic() - started, 1)}
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    report("registering", 3, steps)
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    report("done", steps, steps)
    return load_manifest(target)


def describe(model: TranslationModel) -> dict[str, object]:
    """A model as ``moot models list --json`` prints it."""
    data = asdict(model)
    data["path"] = str(model.path)
    data.pop("extra", None)
    data["role"] = "translation"
    return data
