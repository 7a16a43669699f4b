"""``python -m stream_app watch``: a terminal wallboard of the rolling scores per channel.

It reads the compacted score topic from the beginning (all partitions, no consumer group, nothing
committed), keeps the latest value per key, and every ``--every`` seconds redraws one table: the
rolling (non-final) snapshots of the chosen window and tenant, dimension ``all`` first, then one row
per channel by volume. ``--once`` prints a single table, without clearing the screen, as soon as it
has caught up with the topic and holds an ``all`` snapshot (exit 0), or exits 1 after ``--timeout``.

``render`` is the pure formatting function; everything else is plumbing around it. Snapshots never
carry customer_id or comment, and render only ever reads the named score fields.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import logging
import signal
import sys
import time
from typing import Any, cast

import orjson

__all__ = ["NULL", "main", "render"]

NULL = "\u2013"  # "–": a value the snapshot has as null (no data)
CLEAR = "\x1b[H\x1b[2J"  # cursor home, clear screen

_COLUMNS = ("channel", "interactions", "CES", "net ease", "CSAT %", "NPS", "abandoned %", "AHT s",
            "service level %")


def _get(snapshot: dict, group: str, field: str) -> Any:
    value = (snapshot.get(group) or {}).get(field)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _fmt(value: Any, spec: str) -> str:
    return NULL if value is None else format(value, spec)


def _row(name: str, snapshot: dict) -> tuple[str, ...]:
    n = _get(snapshot, "interactions", "n")
    return (
        name,
        _fmt(n, "d" if isinstance(n, int) else ".0f"),
        _fmt(_get(snapshot, "ces", "mean"), ".2f"),
        _fmt(_get(snapshot, "ces", "net_ease"), "+.1f"),
        _fmt(_get(snapshot, "csat", "pct"), ".1f"),
        _fmt(_get(snapshot, "nps", "score"), "+.1f"),
        _fmt(_get(snapshot, "interactions", "abandoned_pct"), ".1f"),
        _fmt(_get(snapshot, "interactions", "aht_seconds"), ".0f"),
        _fmt(_get(snapshot, "interactions", "service_level_pct"), ".1f"),
    )


def _newest(docs: list[dict]) -> dict:
    return max(docs, key=lambda d: (str(d.get("window_end", "")), str(d.get("updated_at", ""))))


def _select(snapshots: dict[str, dict], window: str,
            tenant: str) -> tuple[list[dict], dict[str, list[dict]]]:
    """The rolling snapshots of ``window`` and ``tenant``: those of dimension ``all``, and those of
    dimension ``channel`` by channel."""
    overall: list[dict] = []
    channels: dict[str, list[dict]] = {}
    for doc in snapshots.values():
        if not isinstance(doc, dict) or doc.get("final") is not False:
            continue
        if doc.get("window") != window or doc.get("tenant", "default") != tenant:
            continue
        if doc.get("dimension") == "all":
            overall.append(doc)
        elif doc.get("dimension") == "channel" and isinstance(doc.get("key"), str):
            channels.setdefault(doc["key"], []).append(doc)
    return overall, channels


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    """The lines of the table: the first row (the column names) underlined, names left-aligned,
    figures right-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
    lines = []
    for i, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [cell.rjust(w)
                                             for cell, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def render(snapshots: dict[str, dict], window: str, tenant: str) -> str:
    """The wallboard table of the rolling snapshots of ``window`` and ``tenant`` (no trailing newline).

    ``snapshots``: Kafka key -> snapshot document, as read from the score topic. Final snapshots,
    other windows, other tenants and dimensions other than ``all`` and ``channel`` are left out.
    Rows: ``all`` first (when present), then channels by interactions, most first.
    """
    overall, channels = _select(snapshots, window, tenant)
    title = f"CX scores  tenant {tenant}  window {window}"
    if not overall and not channels:
        return f"{title}\nwaiting for snapshots\u2026"

    total = _newest(overall) if overall else None
    latest = {name: _newest(docs) for name, docs in channels.items()}
    head = total or _newest(list(latest.values()))
    shown = [total, *latest.values()] if total else list(latest.values())
    updated = max(str(d.get("updated_at") or "") for d in shown) or NULL
    header = (f"{title}  [{head.get('window_start', NULL)} \u2192 {head.get('window_end', NULL)})"
              f"  updated {updated}")

    def volume(item: tuple[str, dict]) -> tuple[float, str]:
        n = _get(item[1], "interactions", "n")
        return (-(n or 0), item[0])

    end = head.get("window_end")
    other_windows: list[str] = []
    rows: list[tuple[str, ...]] = [_COLUMNS]
    if total is not None:
        rows.append(_row("all", total))
    for name, doc in sorted(latest.items(), key=volume):
        label = name
        if doc.get("window_end") != end:  # a channel whose last snapshot is of another window
            label += "*"
            other_windows.append(
                f"{name} {doc.get('window_start', NULL)} \u2192 {doc.get('window_end', NULL)}")
        rows.append(_row(label, doc))

    lines = [header, "", *_table(rows)]
    if other_windows:
        lines.append("")
        lines.append("* another window: " + "; ".join(other_windows))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Reading the score topic


def _wanted(key: str, window: str, tenant: str) -> bool:
    """Rolling keys of the dimensions shown: ``{tenant}/all|channel/{key}/{window}``."""
    return key.endswith(f"/{window}") and (key.startswith(f"{tenant}/all/")
                                           or key.startswith(f"{tenant}/channel/"))


class _Board:
    """The latest value per (relevant) key of the score topic."""

    def __init__(self, window: str, tenant: str) -> None:
        self.window, self.tenant = window, tenant
        self.snapshots: dict[str, dict] = {}

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        name = key.decode("utf-8", "replace")
        if value is None:  # a tombstone
            self.snapshots.pop(name, None)
            return
        if not _wanted(name, self.window, self.tenant):
            return
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError:
            return
        if isinstance(doc, dict):
            self.snapshots[name] = doc

    def has_overall(self) -> bool:
        return any(isinstance(d, dict) and d.get("dimension") == "all" and d.get("final") is False
                   and d.get("window") == self.window and d.get("tenant", "default") == self.tenant
                   for d in self.snapshots.values())


async def _assign(consumer: Any, topic: str, deadline: float | None) -> list:
    """Assign every partition of ``topic`` from the beginning; wait for the topic to exist."""
    from aiokafka import TopicPartition

    while True:
        # A fresh fetch of the cluster's metadata: what consumer.topics() does, but keeping the
        # partitions (consumer.partitions_for_topic only knows topics the client already tracks).
        cluster = await consumer._client.fetch_all_metadata()
        partitions = cluster.partitions_for_topic(topic)
        if partitions:
            tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            return tps
        if deadline is not None and time.monotonic() >= deadline:
            return []
        await asyncio.sleep(1.0)


async def _watch(args: argparse.Namespace) -> int:
    from aiokafka import AIOKafkaConsumer

    from stream_app.settings import Settings

    settings = Settings()
    topic = settings.topic_scores
    board = _Board(args.window, args.tenant)
    deadline = time.monotonic() + args.timeout if args.once else None
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="cx-watch",
        **settings.kafka_client_options(),
    )
    if args.once:
        await asyncio.wait_for(consumer.start(), max(args.timeout, 1.0))
    else:
        await consumer.start()
    try:
        if not args.once:
            _show(CLEAR + render({}, args.window, args.tenant)
                  + f"\n(topic {topic} on {settings.kafka_bootstrap})")
        tps = await _assign(consumer, topic, deadline)
        if not tps:
            print(f"cx watch: topic {topic!r} not found on {settings.kafka_bootstrap} "
                  f"after {args.timeout:g} s", file=sys.stderr)
            return 1
        ends = await consumer.end_offsets(tps)
        behind = {tp for tp in tps if ends[tp] > 0}  # caught up once every position reaches its end
        next_draw = time.monotonic()
        while True:
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            for messages in batch.values():
                for message in messages:
                    board.apply(message.key, message.value)
            if behind:
                behind = {tp for tp in behind if await consumer.position(tp) < ends[tp]}
            now = time.monotonic()
            if args.once:
                if not behind and board.has_overall():
                    _show(render(board.snapshots, args.window, args.tenant))
                    return 0
                if deadline is not None and now >= deadline:
                    print(f"cx watch: no rolling 'all' snapshot for tenant {args.tenant!r}, window "
                          f"{args.window!r} on topic {topic!r} after {args.timeout:g} s", file=sys.stderr)
                    return 1
            elif now >= next_draw and not behind:
                _show(CLEAR + render(board.snapshots, args.window, args.tenant))
                next_draw = now + args.every
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()


def _show(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------------------------------
# CLI


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("must be a finite number > 0")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stream_app watch",
        description="Terminal wallboard: rolling CES/CSAT/NPS and service figures per channel, from the "
                    "score topic (CX_TOPIC_SCORES on CX_KAFKA_BOOTSTRAP).",
    )
    parser.add_argument("--window", default="15m", help="window name (default 15m)")
    parser.add_argument("--tenant", default="default", help="tenant (default: default)")
    parser.add_argument("--every", type=_positive, default=2.0, help="seconds between redraws (default 2)")
    parser.add_argument("--once", action="store_true",
                        help="print one table once an 'all' snapshot is there, then exit "
                             "(0; 1 after --timeout)")
    parser.add_argument("--timeout", type=_positive, default=30.0,
                        help="with --once: seconds to wait for a snapshot (default 30)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``python -m stream_app watch [options]``; returns the exit status."""
    args = _parser().parse_args(argv)
    with contextlib.suppress(AttributeError, ValueError):
        # "–" on a terminal that cannot show it; a stream without reconfigure is left as it is
        cast(io.TextIOWrapper, sys.stdout).reconfigure(errors="replace")
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s",
                            stream=sys.stderr)

    async def run() -> int:
        task = asyncio.current_task()
        assert task is not None  # run() is a coroutine run by asyncio.run
        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await _watch(args)

    try:
        return asyncio.run(run())
    except KeyboardInterrupt:
        return 130
    except asyncio.CancelledError:  # SIGTERM
        return 0
    except Exception as exc:  # noqa: BLE001 - a CLI: one line, not a traceback
        print(f"cx watch: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
