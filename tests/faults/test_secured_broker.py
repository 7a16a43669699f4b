"""The worker against a broker that requires SASL_SSL (SCRAM-SHA-512) and authorizes with ACLs
(tests/faults/secured.py): end to end with exact scores, clear one-line errors at start for a wrong
password, a principal without ACLs and a certificate that does not match, and the password nowhere."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import urllib.request

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stream_app.settings import Settings
from stream_app.topics import plan
from tests.faults.ledger import tally
from tests.faults.secured import (
    ADMIN_PASSWORD,
    STRANGER_PASSWORD,
    WORKER_PASSWORD,
    BrokerExited,
    SecuredBroker,
    make_broker_keystore,
    make_ca,
)
from tests.harness import ROOT, Deployment, produce
from tests.integration.traffic import settle, simulated

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def secured_broker(tmp_path_factory):
    directory = tmp_path_factory.mktemp("secured-broker")
    ca = make_ca(directory, "cx-test-ca")
    broker = SecuredBroker(directory, ca[0]).start(make_broker_keystore(directory, ca))
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def foreign_ca(tmp_path_factory):
    """A CA that signed nothing the broker shows."""
    return make_ca(tmp_path_factory.mktemp("foreign-ca"), "foreign-ca")[0]


async def _create_topics(broker: SecuredBroker, deployment: Deployment) -> None:
    """The product's topics, made by the admin as an operator would (the worker may only make its
    internal ones)."""
    settings = Settings(**{f"topic_{name}": topic for name, topic in deployment.topics.items()})
    admin = AIOKafkaAdminClient(**broker.client())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t.name, t.partitions or 8, 1, topic_configs=t.config)
                                   for t in plan(settings)])
    finally:
        await admin.close()


@pytest.fixture
def secured_deployment(secured_broker, redis_service, tmp_path):
    deployment = Deployment(tmp_path, bootstrap="localhost:29092", client=secured_broker.client())
    deployment.client.pop("bootstrap_servers")
    asyncio.run(_create_topics(secured_broker, deployment))
    return deployment


def _run_worker(deployment: Deployment, env: dict[str, str]) -> tuple[int, str, str, float]:
    """A worker expected to stop at start: its exit code, stdout, stderr and how long it took (a
    worker that hangs or retries for ever fails the test after 90 s)."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "stream_app", "worker"], cwd=ROOT,
                          env={**deployment.env("w1"), **env}, capture_output=True, text=True, timeout=90)
    return done.returncode, done.stdout, done.stderr, round(time.monotonic() - started, 1)


async def test_worker_runs_end_to_end_over_sasl_ssl_with_only_its_acls(secured_broker, secured_deployment,
                                                                      workers, figures):
    deployment = secured_deployment
    acls = secured_broker.grant_worker(deployment)
    deployment.extra.update(secured_broker.worker_env())
    worker = workers(deployment, "w1")
    traffic = simulated(deployment, 3_000, seed=81)
    await produce(traffic.records, kafka=deployment.kafka)
    settled = await settle(deployment, traffic, timeout=120)
    answers = {path: _get(worker.port, path) for path in
               ("/metrics", "/healthz", "/readyz", "/api/scores", "/api/alerts", "/api/history", "/")}
    lost, duplicated = tally(settled.latest, traffic)
    figures(fed=len(traffic.records), lost=lost, duplicated=duplicated, dead_lettered=0,
            acl_entries=len(acls))
    assert settled.exact, settled.diffs
    for password in (WORKER_PASSWORD, ADMIN_PASSWORD):
        for where, text in (("worker log", worker.log()), ("broker log", secured_broker.log()),
                            *((f"GET {path}", body) for path, body in answers.items())):
            assert password not in text, f"a SASL password is in the {where}"


async def test_wrong_password_and_a_principal_without_acls_stop_the_worker_at_start_in_one_line(
        secured_broker, secured_deployment, figures):
    deployment = secured_deployment
    wrong = "not-" + WORKER_PASSWORD
    code, out, err, took = _run_worker(deployment, secured_broker.worker_env(password=wrong))
    assert (code, err.count("\n")) == (2, 1), (code, out, err)
    assert "authentication failed" in err.lower() and "cx-worker" in err, err
    assert wrong not in err + out and WORKER_PASSWORD not in err + out
    stranger_code, out2, err2, took2 = _run_worker(deployment, secured_broker.worker_env("cx-stranger"))
    assert (stranger_code, err2.count("\n")) == (2, 1), (stranger_code, out2, err2)
    assert "does not authorize user 'cx-stranger'" in err2, err2
    assert STRANGER_PASSWORD not in err2 + out2
    figures(fed=0, lost=0, duplicated=0, dead_lettered=0, wrong_password_exit_s=took, no_acls_exit_s=took2)
    print(f"\n{err.strip()}\n{err2.strip()}")


async def test_a_client_that_checks_the_certificate_refuses_a_broker_that_does_not_match(
        secured_broker, secured_deployment, foreign_ca, figures):
    deployment = secured_deployment
    secured_broker.grant_worker(deployment)
    # the broker's certificate is signed by a CA this worker does not trust
    code, out, err, took = _run_worker(deployment, secured_broker.worker_env(cafile=foreign_ca))
    assert (code, err.count("\n")) == (2, 1), (code, out, err)
    assert "certificate verify failed" in err, err
    # the right CA, but the broker is reached under a name its certificate does not carry
    code2, out2, err2, took2 = _run_worker(deployment,
                                           secured_broker.worker_env(bootstrap="127.0.0.1:29092"))
    assert (code2, err2.count("\n")) == (2, 1), (code2, out2, err2)
    assert "certificate verify failed" in err2 and "mismatch" in err2, err2
    figures(fed=0, lost=0, duplicated=0, dead_lettered=0, foreign_ca_exit_s=took, wrong_host_exit_s=took2)
    print(f"\n{err.strip()}\n{err2.strip()}")


def test_a_broker_that_cannot_start_says_why_in_its_log(tmp_path, secured_broker):
    """With slf4j-api 2 first on the classpath (deploy/local/kafka.sh) the broker's own log works: one
    whose keystore is missing exits and names it (it used to exit 1 and say nothing)."""
    broker = SecuredBroker(tmp_path, secured_broker.ca, port=29094, controller_port=29095)
    try:
        with pytest.raises(BrokerExited) as exited:
            broker.start(tmp_path / "missing.p12", timeout=90)
    finally:
        broker.stop()
    assert exited.value.code != 0
    assert "missing.p12" in exited.value.log, exited.value.log[-3000:]


def _get(port: int, path: str) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:  # /readyz answers 503 while not ready: still an answer
        return exc.read().decode(errors="replace")
