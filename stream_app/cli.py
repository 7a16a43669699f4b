"""``python -m stream_app worker|simulate|backtest|watch``: the commands of the contract, and watch."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys

from stream_app.errors import ConfigError


def _worker(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream_app worker",
                                     description="Run one worker; configuration comes from CX_* variables.")
    parser.parse_args(argv)
    from pydantic import ValidationError

    from stream_app.app import create_app, drop_stores_ahead_of_changelog
    from stream_app.rules import load_rules
    from stream_app.settings import Settings
    from stream_app.topics import ensure_topics

    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(f"CX_{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        print(f"cx worker: settings: {problems}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    # aiokafka's producer logs every record it sends at DEBUG, value included: a dead letter is the
    # original bytes, personal data and all. Never below INFO, whatever CX_LOG_LEVEL says.
    logging.getLogger("aiokafka.producer.producer").setLevel(max(logging.INFO, logging.getLogger().level))
    try:
        rules = () if settings.rules_file is None else load_rules(
            settings.rules_file, windows=[spec.name for spec in settings.window_specs],
            dimensions=settings.dimension_names)
        created = asyncio.run(ensure_topics(settings))
    except ConfigError as exc:
        print(f"cx worker: {exc}", file=sys.stderr)
        return 2
    if created:
        logging.getLogger("stream_app").info("created topics: %s", ", ".join(created))
    asyncio.set_event_loop(asyncio.new_event_loop())
    # A batch allocates tens of thousands of small dicts and lists that live until it ends; with the
    # default thresholds the collector rescans them many times per batch (measured: 2.1 s -> 1.3 s
    # for a 20,000-record batch with these settings). Startup objects are frozen out of its scans.
    gc.set_threshold(200_000, 50, 100)
    app = create_app(settings, rules)
    dropped = asyncio.get_event_loop().run_until_complete(drop_stores_ahead_of_changelog(app, settings))
    if dropped:
        logging.getLogger("stream_app").warning(
            "local stores ahead of their changelog (was it made again?), rebuilt from it: %s",
            "; ".join(dropped))
    gc.freeze()
    import faust

    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()
    return 0


def _simulate(argv: list[str]) -> int:
    from stream_app import simulate

    return simulate.main(argv)


def _backtest(argv: list[str]) -> int:
    from stream_app import backtest

    return backtest.main(argv)


def _watch(argv: list[str]) -> int:
    from stream_app import watch

    return watch.main(argv)


COMMANDS = {"worker": _worker, "simulate": _simulate, "backtest": _backtest, "watch": _watch}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in COMMANDS:
        print(f"usage: python -m stream_app {{{'|'.join(COMMANDS)}}} [options]", file=sys.stderr)
        return 2
    return COMMANDS[args[0]](args[1:])
