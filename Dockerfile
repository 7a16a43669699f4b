# The worker image: `python -m stream_app worker`, configured by CX_* variables (README, Configuration).
# Build from the repository root: docker build -t cx-engine:0.1.0 .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CX_WEB_HOST=0.0.0.0 \
    CX_WEB_PORT=6066 \
    CX_DATA_DIR=/var/lib/cx/worker

WORKDIR /app
COPY pyproject.toml README.md ./
COPY stream_app ./stream_app
COPY schemas ./schemas
# Editable, so the package runs from /app with schemas/ beside it, where stream_app/contract.py looks.
RUN pip install -e . \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/cx --create-home cx

USER 10001
EXPOSE 6066
# Faust stops gracefully on SIGTERM: it leaves the consumer group, so partitions move at once.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CX_WEB_PORT', '6066'), timeout=2)"]
CMD ["python", "-m", "stream_app", "worker"]
