"""Shared fixtures: settings with a temporary data directory, and the app under test with its lifespan running."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.core.bus import InProcessBus
from server.core.settings import Settings
from server.storage import Storage
from tests.databases import postgres_database

# Servers started by tests (in-process, threads, subprocesses, the browser tests' namespaced child) use rules only;
# the real default local model (about 20 s to load) runs in tests/test_local_llm.py, which asks for it explicitly.
os.environ.setdefault("MOOT_LLM_BACKEND", "none")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", asr_backend="none", rtc_loopback_candidates=True)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same test on SQLite and on a fresh database of the real PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'moot.db'}"
        return
    yield from postgres_database()


@pytest.fixture
def migrated_storage(database_url: str) -> Iterator[Storage]:
    """Storage on ``database_url``, its schema at the head migration."""
    store = Storage(database_url)
    store.create_schema()
    yield store
    store.close()


@pytest.fixture
async def bus() -> AsyncIterator[InProcessBus]:
    """A started in-process bus, closed after the test."""
    started = InProcessBus()
    await started.start()
    yield started
    await started.close()
