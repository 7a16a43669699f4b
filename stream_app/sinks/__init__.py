"""Where results leave the worker: Kafka topics (and, later, Redis and Prometheus)."""
