"""A redis-server of one test, on a free port: tests never see each other's keys, and one can stop it."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import redis

from tests.harness import free_port


class RedisServer:
    """Debian's redis-server, no persistence: ``stop`` then ``start`` is an empty Redis on the same port."""

    def __init__(self, tmp: Path, password: str | None = None) -> None:
        self.port = free_port()
        self.password = password
        self.dir = tmp / f"redis-{self.port}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def start(self) -> RedisServer:
        log = open(self.dir / "redis.log", "ab")
        auth = ["--requirepass", self.password] if self.password else []
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.dir), *auth], stdout=log, stderr=subprocess.STDOUT)
        hello = f"AUTH {self.password}\r\nPING\r\n".encode() if self.password else b"PING\r\n"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                    conn.sendall(hello)
                    replies = conn.makefile("rb")
                    if self.password:
                        replies.readline()  # the answer to AUTH
                    if replies.readline().startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        log_text = (self.dir / "redis.log").read_text()
        raise AssertionError(f"redis-server on {self.port} did not answer:\n{log_text}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
