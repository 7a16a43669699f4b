"""Security basics: Kafka SASL/SSL and Redis AUTH/TLS settings reach the clients; personal data and
secrets appear nowhere the run writes to, except the dead letter, which keeps the original bytes as
the contract requires."""

from __future__ import annotations

import ssl
import urllib.request

import orjson
import pydantic
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from redis.asyncio.connection import SSLConnection

from stream_app.app import _credentials
from stream_app.settings import Settings
from stream_app.sinks.redis import ReadModel
from tests.faults.ledger import (
    Bad,
    dead_expected,
    read_model_differences,
    records_of,
    settle_dead_letters,
    tally,
)
from tests.faults.secured import make_ca
from tests.harness import BOOTSTRAP, Deployment, Worker, dumps, produce, read_all, wait_for
from tests.integration.traffic import Traffic, settle, simulated
from tests.redis_server import RedisServer

SASL_PASSWORD = "Kf-5ecret-pw-1187"
REDIS_PASSWORD = "Rd-5ecret-pw-7731"
PII = (b"PII-CID-", b"PII-NOTE-")  # every customer_id and comment of the PII scenario starts so


@pytest.mark.faults
@pytest.mark.parametrize(("protocol", "mechanism"), [
    ("PLAINTEXT", None), ("SSL", None), ("SASL_PLAINTEXT", "PLAIN"), ("SASL_SSL", "SCRAM-SHA-512"),
    ("SASL_SSL", "SCRAM-SHA-256"), ("SASL_PLAINTEXT", "SCRAM-SHA-512"),
    ("SASL_SSL", None),  # the mechanism defaults to PLAIN, as in aiokafka
    ("PLAINTEXT", "PLAIN"),  # SASL settings without a SASL protocol are ignored by every client
])
async def test_kafka_security_settings_reach_faust_and_every_aiokafka_client_alike(protocol, mechanism):
    """Faust's consumer and producer, the topic admin, the simulator and `watch` all speak one protocol."""
    settings = Settings(kafka_security_protocol=protocol, kafka_sasl_mechanism=mechanism,
                        kafka_sasl_username="cx-user", kafka_sasl_password=SASL_PASSWORD)
    ours = settings.kafka_client_options()
    faust_side = credentials_to_aiokafka_auth(_credentials(settings))
    sasl = ("sasl_mechanism", "sasl_plain_username", "sasl_plain_password")
    assert ours["security_protocol"] == faust_side["security_protocol"] == protocol
    assert {k: ours.get(k) for k in sasl} == {k: faust_side.get(k) for k in sasl}
    if protocol.startswith("SASL_"):
        assert (ours["sasl_mechanism"], ours["sasl_plain_password"]) == (mechanism or "PLAIN", SASL_PASSWORD)
    tls = "SSL" in protocol
    assert isinstance(ours.get("ssl_context"), ssl.SSLContext) is tls
    assert isinstance(faust_side.get("ssl_context"), ssl.SSLContext) is tls
    # aiokafka accepts them together
    await AIOKafkaAdminClient(bootstrap_servers="127.0.0.1:1", **ours).close()
    assert SASL_PASSWORD not in repr(settings)


@pytest.mark.faults
@pytest.mark.parametrize("protocol", ["SSL", "SASL_SSL"])
def test_ssl_cafile_is_the_one_ca_faust_and_every_aiokafka_client_trust(protocol, tmp_path):
    """CX_KAFKA_SSL_CAFILE: the TLS context of every client trusts that CA (and only it), checks the
    certificate and the host name."""
    ca, _ = make_ca(tmp_path, "cafile-test-ca")
    settings = Settings(kafka_security_protocol=protocol, kafka_ssl_cafile=ca, kafka_sasl_username="u",
                        kafka_sasl_password="p", kafka_sasl_mechanism="SCRAM-SHA-512")
    contexts = [settings.kafka_client_options()["ssl_context"],
                credentials_to_aiokafka_auth(_credentials(settings))["ssl_context"]]
    for context in contexts:
        names = [dict(part[0] for part in cert["subject"]).get("commonName")
                 for cert in context.get_ca_certs()]
        assert names == ["cafile-test-ca"]
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    with pytest.raises(pydantic.ValidationError, match="kafka_ssl_cafile"):
        Settings(kafka_ssl_cafile=tmp_path / "missing.pem")
    with pytest.raises(pydantic.ValidationError, match="kafka_sasl_mechanism"):
        Settings(kafka_sasl_mechanism="SCRAM-SHA-1")


@pytest.mark.faults
@pytest.mark.parametrize(("url", "tls"), [(f"redis://:{REDIS_PASSWORD}@redis.example:6380/2", False),
                                          (f"rediss://:{REDIS_PASSWORD}@redis.example:6380/2", True)])
async def test_redis_url_password_and_tls_reach_the_read_model_client(url, tls):
    model = ReadModel(Settings(redis_url=url))
    pool = model.client.connection_pool
    kwargs = pool.connection_kwargs
    served = (kwargs["password"], kwargs["host"], kwargs["port"], kwargs["db"])
    assert served == (REDIS_PASSWORD, "redis.example", 6380, 2)
    assert issubclass(pool.connection_class, SSLConnection) is tls
    await model.client.aclose()


@pytest.mark.faults
@pytest.mark.integration
async def test_worker_fills_a_redis_that_requires_a_password_and_never_shows_it(deployment, start_worker,
                                                                                 tmp_path, figures):
    server = RedisServer(tmp_path, password=REDIS_PASSWORD).start()
    try:
        traffic = simulated(deployment, 1_500, seed=41)
        worker = start_worker(CX_REDIS_URL=server.url)
        await produce(traffic.records)
        settled = await settle(deployment, traffic)
        filled = await wait_for(lambda: read_model_differences(deployment, server.client()), timeout=30,
                                message="the read model behind AUTH filled")
        lost, duplicated = tally(settled.latest, traffic)
        figures(fed=len(traffic.records), lost=lost, duplicated=duplicated, dead_lettered=0,
                redis_scores=filled[2])
        assert settled.exact, settled.diffs
        for name, text in (("log", worker.log()), ("metrics", worker.metrics())):
            assert REDIS_PASSWORD not in text, f"the Redis password is in the worker's {name}"
    finally:
        server.stop()


RULES = """rules:
  - name: pii-probe
    metric: ces.net_ease
    dimension: channel
    window: 15m
    comparison: below
    threshold: 100
    min_samples: 1
    for: 0s
    cooldown: 0s
    severity: info
"""


def with_personal_data(traffic: Traffic) -> Traffic:
    """Every event carries a customer_id and every survey a comment, each one unique and easy to find."""
    records, interactions, surveys = [], [], []
    for number, (topic, key, value) in enumerate(traffic.records):
        event = orjson.loads(value) | {"customer_id": f"PII-CID-{number:05d}"}
        if "answered_at" in event:
            event["comment"] = f"PII-NOTE-{number:05d} call me on 555-{number % 10_000:04d}"
        (surveys if "answered_at" in event else interactions).append(event)
        records.append((topic, key, dumps(event)))
    return Traffic(records, interactions, surveys)


async def _every_topic_of(deployment: Deployment) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        return sorted(t for t in await admin.list_topics() if deployment.tag in t)
    finally:
        await admin.close()


def _redis_contents(server: RedisServer) -> list[bytes]:
    """Every key and value of the read model, whatever its type."""
    r = server.client()
    found = []
    for key in r.scan_iter("*"):
        kind = r.type(key).decode()
        found.append(key)
        if kind == "string":
            found.append(r.get(key))
        elif kind == "zset":
            found += [member for member, _ in r.zrange(key, 0, -1, withscores=True)]
        elif kind == "hash":
            found += [part for item in r.hgetall(key).items() for part in item]
        elif kind == "stream":
            found += [orjson.dumps({k.decode(): v.decode() for k, v in fields.items()})
                      for _, fields in r.xrange(key)]
        else:
            raise AssertionError(f"unexpected Redis type {kind} for {key!r}")
    return found


@pytest.mark.faults
@pytest.mark.integration
async def test_customer_id_and_comment_appear_nowhere_the_run_writes_but_the_dead_letter(
        deployment, start_worker, redis_server, tmp_path, figures):
    """The log at DEBUG, /metrics, the HTTP API, every topic the worker writes (scores, alerts, partials,
    changelogs, Faust's own), and Redis keys and values. The dead letter is the documented exception: it
    keeps the original bytes, personal data included (but never in its headers)."""
    traffic = with_personal_data(simulated(deployment, 2_000, seed=42, incident="chat"))
    topics = deployment.topics
    interaction, survey = traffic.interactions[0], traffic.surveys[0]
    bad = [(topics["interactions"], {**interaction, "event_id": "bad-1", "closed_at": "now"},
            "bad_timestamp"),
           (topics["surveys"], {**survey, "event_id": "bad-2", "answers": [{"metric": "csat", "value": 9}]},
            "value_out_of_scale")]
    entries = [(record, None) for record in traffic.records]
    for topic, event, reason in bad:
        key, value = event["interaction_id"].encode(), dumps(event)
        entries.append(((topic, key, value), Bad(key, value, reason)))
    (tmp_path / "rules.yaml").write_text(RULES)
    worker = start_worker(CX_REDIS_URL=redis_server.url, CX_RULES_FILE=str(tmp_path / "rules.yaml"),
                          CX_LOG_LEVEL="DEBUG")  # the most talkative log there is
    sent = await produce(records_of(entries))
    settled = await settle(deployment, traffic)
    found, problems = await settle_dead_letters(deployment, dead_expected(entries, sent))
    await wait_for(lambda: read_model_differences(deployment, redis_server.client()), timeout=30,
                   message="the read model filled")

    async def alerted():
        return await read_all(topics["alerts"])
    await wait_for(alerted, timeout=30, message="alerts on the alert topic")

    written: dict[str, list[bytes]] = {
        "worker log": [worker.log_path.read_bytes()],
        "redis": _redis_contents(redis_server),
        **{f"GET {path}": [_get(worker, path)] for path in
           ("/metrics", "/api/scores", "/api/alerts", "/api/alerts?state=recent", "/api/history", "/")},
    }
    scanned = await _every_topic_of(deployment)
    for topic in scanned:
        if topic not in (topics["interactions"], topics["surveys"], topics["dead_letter"]):
            written[f"topic {topic}"] = [
                part for r in await read_all(topic)
                for part in (r.key or b"", r.value or b"", *(v for _, v in r.headers))]
    leaks = sorted(where for where, parts in written.items() for part in parts if any(p in part for p in PII))
    lost, duplicated = tally(settled.latest, traffic)
    figures(fed=len(entries), lost=lost, duplicated=duplicated, dead_lettered=len(found),
            places_searched=len(written))
    assert settled.exact, settled.diffs
    assert not problems, problems
    assert {f"topic {topics[t]}" for t in ("scores", "alerts", "partials")} <= written.keys()
    assert sum("changelog" in where for where in written) == 2, "both tables' changelogs were searched"
    assert not leaks, f"personal data in: {sorted(set(leaks))}"
    letters = [r for records in found.values() for r in records]
    assert all(any(p in r.value for p in PII) for r in letters), "the dead letter keeps the original bytes"
    assert not any(p in v for r in letters for _, v in r.headers for p in PII), "never in its headers"


def _get(worker: Worker, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}{path}", timeout=5) as response:
        return response.read()
