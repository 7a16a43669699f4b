# Everything a fresh machine needs is installed and started by these targets.
PY := .venv/bin/python
export PYTHONUNBUFFERED := 1

.PHONY: help install up down demo lint test test-unit test-integration test-faults bench bench-compare clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

install: ## Install Debian packages and the Python environment (.venv)
	@bash deploy/local/install.sh

up: install ## Start Kafka (KRaft, 127.0.0.1:9092) and Redis (127.0.0.1:6379)
	@bash deploy/local/kafka.sh start
	@bash deploy/local/redis.sh start

down: ## Stop what `make up` started (by pid)
	-@bash deploy/local/redis.sh stop
	-@bash deploy/local/kafka.sh stop

demo: up ## Infrastructure, a worker and the simulator, with live scores per channel
	@bash deploy/local/demo.sh

lint: install ## Ruff and mypy over stream_app, tests and benchmarks (mypy: stream_app only)
	$(PY) -m ruff check stream_app tests benchmarks
	$(PY) -m mypy

test: up ## Install, start the infrastructure, run the whole suite (unit, integration, fault tests)
	$(PY) -m pytest tests -p no:cacheprovider

test-unit: install ## Unit tests only (no broker)
	$(PY) -m pytest tests/unit -q

test-integration: up ## Integration tests against the real broker
	$(PY) -m pytest tests/integration

test-faults: up ## The fault suite alone: kill -9, two workers, broker and Redis restarts, bad input, lateness
	$(PY) -m pytest -m faults tests -p no:cacheprovider

bench: up ## Load 300,000 events with the worker paused, then worker vs a plain aiokafka loop
	$(PY) -m benchmarks.bench $(BENCH_ARGS)

bench-compare: up ## 1,000,000 events: floor, worker, a Quix Streams peer, latency, one vs two workers
	$(PY) -m benchmarks.compare $(BENCH_ARGS)

clean: down ## Remove local state (broker data, worker tables); keeps the jar cache
	rm -rf .run
