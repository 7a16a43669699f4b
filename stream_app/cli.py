"""``python -m stream_app worker|simulate``: the two commands of the contract."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from stream_app.errors import ConfigError


def _worker(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream_app worker",
                                     description="Run one worker; configuration comes from CX_* variables.")
    parser.parse_args(argv)
    from stream_app.app import create_app, reset_local_tables
    from stream_app.settings import Settings
    from stream_app.topics import ensure_topics

    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    try:
        created = asyncio.run(ensure_topics(settings))
    except ConfigError as exc:
        print(f"cx worker: {exc}", file=sys.stderr)
        return 2
    if created:
        logging.getLogger("stream_app").info("created topics: %s", ", ".join(created))
    asyncio.set_event_loop(asyncio.new_event_loop())
    app = create_app(settings)
    reset_local_tables(app)
    import faust

    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()
    return 0


def _simulate(argv: list[str]) -> int:
    from stream_app import simulate

    return simulate.main(argv)


def _watch(argv: list[str]) -> int:
    from stream_app import watch

    return watch.main(argv)


COMMANDS = {"worker": _worker, "simulate": _simulate, "watch": _watch}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in COMMANDS:
        print("usage: python -m stream_app {worker|simulate} [options]", file=sys.stderr)
        return 2
    return COMMANDS[args[0]](args[1:])
