"""Shared fixtures: one real broker for the whole run, an isolated deployment per test."""

from __future__ import annotations

import subprocess

import pytest

from tests.harness import ROOT, Deployment, Worker


@pytest.fixture(scope="session")
def broker() -> str:
    """Start (or reuse) the project's local Kafka; a missing broker is a failure, never a skip."""
    done = subprocess.run([str(ROOT / "deploy/local/kafka.sh"), "start"], capture_output=True, text=True)
    assert done.returncode == 0, f"could not start Kafka:\n{done.stdout}\n{done.stderr}"
    return "127.0.0.1:9092"


@pytest.fixture
def deployment(broker: str, tmp_path) -> Deployment:
    return Deployment(tmp_path)


@pytest.fixture
def start_worker(deployment: Deployment):
    """Start workers of the test's deployment; every one is stopped (or killed) at teardown."""
    started: list[Worker] = []

    def start(name: str = "w1", wait: bool = True, **extra: str) -> Worker:
        if extra:
            deployment.extra.update(extra)
        worker = Worker(deployment, name)
        started.append(worker)
        return worker.start(wait=wait)

    yield start
    for worker in started:
        worker.stop(timeout=10)
