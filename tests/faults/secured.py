"""A single-node KRaft broker that requires SASL_SSL with SCRAM-SHA-512 and authorizes with ACLs
(StandardAuthorizer), made by the tests themselves: a CA and a broker certificate for ``localhost``
(openssl, nothing downloaded), SCRAM users written when the storage is formatted, ACLs set with the
broker's own AclCommand. Ports 29092 (SASL_SSL) and 29093 (controller, plaintext on loopback).

Principals: ``admin`` (super user, for setup and the test's own clients), ``cx-worker`` (gets the ACLs
of one deployment at a time) and ``cx-stranger`` (right password, no ACLs).
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.harness import ROOT, Deployment

PORT, CONTROLLER_PORT = 29092, 29093
BOOTSTRAP = f"localhost:{PORT}"
ADMIN_PASSWORD = "Adm-5ecret-pw-4410"
WORKER_PASSWORD = "Wkr-5ecret-pw-9127"
STRANGER_PASSWORD = "Str-5ecret-pw-3365"
STORE_PASSWORD = "store-pw-0001"
USERS = {"admin": ADMIN_PASSWORD, "cx-worker": WORKER_PASSWORD, "cx-stranger": STRANGER_PASSWORD}


def classpath() -> str:
    done = subprocess.run([str(ROOT / "deploy/local/kafka.sh"), "classpath"], capture_output=True, text=True,
                          check=True)
    return done.stdout.strip()


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA: (its certificate, its key)."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
             "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=directory)
    return directory / f"{name}.pem", directory / f"{name}.key"


def make_broker_keystore(directory: Path, ca: tuple[Path, Path], host: str = "localhost") -> Path:
    """A key and a certificate for ``host`` (its only name: no IP address), signed by ``ca``, as PKCS12."""
    (directory / "san.ext").write_text(f"subjectAltName=DNS:{host}\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={host}", "-keyout", "broker.key",
             "-out", "broker.csr", cwd=directory)
    _openssl("x509", "-req", "-in", "broker.csr", "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
             "-days", "2", "-extfile", "san.ext", "-out", "broker.pem", cwd=directory)
    _openssl("pkcs12", "-export", "-in", "broker.pem", "-inkey", "broker.key", "-certfile", str(ca[0]),
             "-name", "broker", "-passout", f"pass:{STORE_PASSWORD}", "-out", "broker.p12", cwd=directory)
    return directory / "broker.p12"


LOG4J = """Configuration:
  Appenders:
    Console: {name: STDOUT, PatternLayout: {pattern: "[%d] %p %m (%c)%n"}}
  Loggers:
    Root: {level: WARN, AppenderRef: [{ref: STDOUT}]}
    Logger: [{name: kafka.server.KafkaRaftServer, level: INFO}]
"""


def _jaas(user: str) -> str:
    return (f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{user}" '
            f'password="{USERS[user]}";')


@dataclass
class SecuredBroker:
    directory: Path
    ca: Path
    port: int = PORT
    controller_port: int = CONTROLLER_PORT
    proc: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return self.directory / "kafka.log"

    def properties(self, keystore: Path) -> str:
        data = self.directory / "data"
        return f"""process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{self.controller_port}
listeners=SASL_SSL://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}
advertised.listeners=SASL_SSL://localhost:{self.port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={_jaas("admin")}
ssl.keystore.type=PKCS12
ssl.keystore.location={keystore}
ssl.keystore.password={STORE_PASSWORD}
ssl.key.password={STORE_PASSWORD}
ssl.truststore.type=PEM
ssl.truststore.location={self.ca}
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:ANONYMOUS
log.dirs={data}
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=-1
"""

    def start(self, keystore: Path, timeout: float = 90.0) -> SecuredBroker:
        """Format (with the SCRAM users) and start; returns once the port is open, or raises with the
        broker's own log when it exits first."""
        cp = classpath()
        props = self.directory / "server.properties"
        props.write_text(self.properties(keystore))
        log4j = self.directory / "log4j2.yaml"
        log4j.write_text(LOG4J)
        if not (self.directory / "data/meta.properties").exists():
            scram = [arg for user, password in USERS.items()
                     for arg in ("--add-scram", f"SCRAM-SHA-512=[name={user},password={password}]")]
            uuid = subprocess.run(["java", "-cp", cp, "kafka.tools.StorageTool", "random-uuid"],
                                  capture_output=True, text=True, check=True).stdout.strip()
            subprocess.run(["java", "-cp", cp, "kafka.tools.StorageTool", "format", "--standalone",
                            "-t", uuid, "-c", str(props), *scram], capture_output=True, text=True, check=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                ["java", "-Xms128m", "-Xmx384m", f"-Dlog4j2.configurationFile={log4j}", "-cp", cp,
                 "kafka.Kafka", str(props)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise BrokerExited(self.proc.returncode, self.log_path.read_text(errors="replace"))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"secured broker not up after {timeout} s:\n{self.log()[-4000:]}")
            time.sleep(0.3)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    # --- clients ---------------------------------------------------------------------------------

    def client(self, user: str = "admin", password: str | None = None) -> dict[str, Any]:
        """aiokafka keyword arguments for a client of ``user`` (the test's own clients are admin)."""
        return {"bootstrap_servers": BOOTSTRAP, "security_protocol": "SASL_SSL",
                "ssl_context": ssl.create_default_context(cafile=str(self.ca)),
                "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": user,
                "sasl_plain_password": USERS[user] if password is None else password}

    def worker_env(self, user: str = "cx-worker", password: str | None = None, *,
                   cafile: Path | None = None, bootstrap: str = BOOTSTRAP) -> dict[str, str]:
        """The CX_* settings of a worker that connects as ``user``."""
        return {"CX_KAFKA_BOOTSTRAP": bootstrap, "CX_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "CX_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "CX_KAFKA_SASL_USERNAME": user,
                "CX_KAFKA_SASL_PASSWORD": USERS[user] if password is None else password,
                "CX_KAFKA_SSL_CAFILE": str(cafile or self.ca)}

    def _admin_config(self) -> Path:
        path = self.directory / "admin.properties"
        path.write_text(f"security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
                        f"sasl.jaas.config={_jaas('admin')}\n"
                        f"ssl.truststore.type=PEM\nssl.truststore.location={self.ca}\n")
        return path

    def grant_worker(self, deployment: Deployment) -> list[str]:
        """The ACLs of ``cx-worker`` for one deployment, and nothing else: read its inputs (and the
        alert topic, which it reads back), write its outputs, read and write the partials topic, create,
        read and write its internal topics (prefix ``{app id}-``: changelogs, Faust's leader topic),
        and use its consumer group. Returns the ACL lines as AclCommand lists them."""
        topics, app_id = deployment.topics, f"cx-test-{deployment.tag}"
        calls = [
            ["--operation", "Read", *_each("--topic", topics["interactions"], topics["surveys"],
                                           topics["partials"], topics["alerts"]), "--group", app_id],
            ["--operation", "Write", *_each("--topic", topics["scores"], topics["alerts"],
                                            topics["dead_letter"], topics["partials"])],
            ["--resource-pattern-type", "prefixed", "--topic", f"{app_id}-", "--operation", "Create",
             "--operation", "Read", "--operation", "Write", "--operation", "Describe"],
        ]
        cp, config = classpath(), self._admin_config()
        command = ["java", "-cp", cp, "org.apache.kafka.tools.AclCommand", "--bootstrap-server", BOOTSTRAP,
                   "--command-config", str(config), "--add", "--allow-principal", "User:cx-worker"]
        procs = [subprocess.Popen([*command, *call], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True) for call in calls]
        outputs = [proc.communicate(timeout=120)[0] for proc in procs]
        assert all(proc.returncode == 0 for proc in procs), outputs
        return [line.strip() for out in outputs for line in out.splitlines()
                if "principal=User:cx-worker" in line]


class BrokerExited(AssertionError):
    """The broker process ended before its port opened; ``log`` is what it said."""

    def __init__(self, code: int, log: str) -> None:
        super().__init__(f"broker exited with {code}:\n{log[-4000:]}")
        self.code = code
        self.log = log


def _each(option: str, *values: str) -> list[str]:
    return [part for value in values for part in (option, value)]
