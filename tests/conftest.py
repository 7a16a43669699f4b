"""Shared fixtures: one real broker for the whole run, an isolated deployment per test."""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from tests.harness import DEPLOYMENT_TAGS, ROOT, Deployment, Worker, delete_topics
from tests.redis_server import RedisServer


@pytest.fixture(scope="session")
def broker() -> str:
    """Start (or reuse) the project's local Kafka; a missing broker is a failure, never a skip."""
    done = subprocess.run([str(ROOT / "deploy/local/kafka.sh"), "start"], capture_output=True, text=True)
    assert done.returncode == 0, f"could not start Kafka:\n{done.stdout}\n{done.stderr}"
    return "127.0.0.1:9092"


@pytest.fixture(autouse=True)
def delete_topics_afterwards():
    """Each test's topics go when it ends (after its workers, which autouse teardown comes after):
    a broker that kept every run's topics would reach its open-file limit after a few runs."""
    before = len(DEPLOYMENT_TAGS)
    yield
    if len(DEPLOYMENT_TAGS) > before:
        asyncio.run(delete_topics(*DEPLOYMENT_TAGS[before:]))


@pytest.fixture(scope="session")
def redis_service() -> str:
    """Start (or reuse) the project's local Redis; a missing redis-server is a failure, never a skip."""
    done = subprocess.run([str(ROOT / "deploy/local/redis.sh"), "start"], capture_output=True, text=True)
    assert done.returncode == 0, f"could not start Redis:\n{done.stdout}\n{done.stderr}"
    return "redis://127.0.0.1:6379/0"


@pytest.fixture
def redis_server(redis_service: str, tmp_path) -> RedisServer:
    """A Redis of the test's own (free port, no persistence), stopped at teardown."""
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def deployment(broker: str, tmp_path) -> Deployment:
    return Deployment(tmp_path)


@pytest.fixture
def workers():
    """Start workers of any deployment; every one is stopped (or killed) at teardown."""
    started: list[Worker] = []

    def start(deployment: Deployment, name: str = "w1", wait: bool = True, **extra: str) -> Worker:
        if extra:
            deployment.extra.update(extra)
        worker = Worker(deployment, name)
        started.append(worker)
        return worker.start(wait=wait)

    yield start
    for worker in started:
        worker.stop(timeout=10)


@pytest.fixture
def start_worker(deployment: Deployment, workers):
    """Start workers of the test's deployment."""

    def start(name: str = "w1", wait: bool = True, **extra: str) -> Worker:
        return workers(deployment, name, wait, **extra)

    return start
