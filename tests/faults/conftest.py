"""The fault suite's figures: every scenario reports events fed, lost, duplicated and dead-lettered.

Each test calls the ``figures`` fixture once with what it measured; the figures go into the JUnit
report (``record_property``) and into a table at the end of the terminal summary, with or without ``-s``.
"""

from __future__ import annotations

import pytest

_ROWS: list[dict] = []


@pytest.fixture
def figures(request, record_property):
    def report(*, fed: int, lost: int, duplicated: int, dead_lettered: int, **notes: object) -> None:
        row = {"fed": fed, "lost": lost, "duplicated": duplicated, "dead_lettered": dead_lettered, **notes}
        for name, value in row.items():
            record_property(name, value)
        _ROWS.append({"scenario": request.node.name, **row})

    return report


def pytest_terminal_summary(terminalreporter) -> None:
    if not _ROWS:
        return
    terminalreporter.section("fault figures")
    width = max(len(row["scenario"]) for row in _ROWS)
    head = f"{'scenario':<{width}}  {'fed':>7}  {'lost':>5}  {'dup':>5}  {'dead':>5}  notes"
    terminalreporter.write_line(head)
    for row in _ROWS:
        notes = ", ".join(f"{k}={v}" for k, v in row.items()
                          if k not in ("scenario", "fed", "lost", "duplicated", "dead_lettered"))
        terminalreporter.write_line(f"{row['scenario']:<{width}}  {row['fed']:>7}  {row['lost']:>5}  "
                                    f"{row['duplicated']:>5}  {row['dead_lettered']:>5}  {notes}")


@pytest.fixture(scope="session")
def kafka_cluster():
    """The three-node cluster of deploy/local/cluster.sh, started empty for the session and stopped
    (its data removed) at its end; shared by every cluster test."""
    import asyncio

    from tests.faults.cluster import Cluster, cluster_sh

    cluster_sh("wipe")
    cluster_sh("start")
    cluster = Cluster()
    try:
        asyncio.run(cluster.wait_brokers(3))
        yield cluster
    finally:
        cluster_sh("wipe")
