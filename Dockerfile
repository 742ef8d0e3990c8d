# rollgraph: the API server (`rollgraph serve`, the default command) or a queue worker
# (`docker run IMAGE worker`). Checked without a Docker engine by tests/test_deploy.py (hadolint,
# every COPY source present, every ROLLGRAPH_* variable one the settings know).
#
#   docker build -t rollgraph .
#   docker run -p 8000:8000 -e ROLLGRAPH_ADMIN_KEY="$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')" rollgraph
#
# The server listens on 0.0.0.0 so that it can be reached from outside the container, and
# `rollgraph serve` refuses the development admin key on any address but loopback, whatever
# ROLLGRAPH_ENV says; this image also sets ROLLGRAPH_ENV=prod, where a key of fewer than an
# estimated 128 bits is refused. So ROLLGRAPH_ADMIN_KEY must be set to a random key, or the
# container exits at once with one line saying so. Without DATABASE_URL (or
# ROLLGRAPH_DATABASE_URL) the store is SQLite in /app/var (a volume); compose.yaml runs it on
# PostgreSQL with Redis.
#
# The web console (issue 15) is not built yet: once it exists, a stage here builds its assets
# and the wheel below includes them, so `pip install` puts them where the server serves them.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- build: every locked dependency checked against its hash, then the package's wheel ---------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY requirements.lock ./
# The lock pins the development and benchmark tools too (one lock for everything): they are
# downloaded and hash-checked here but never installed in the image, since the install below
# takes only what the package (and its `otel` extra) needs, from these wheels and nothing else.
RUN python -m pip wheel --require-hashes --only-binary=:all: --wheel-dir /wheels \
        -r requirements.lock
COPY pyproject.toml README.md ./
COPY engine ./engine
COPY analysis ./analysis
COPY control_plane ./control_plane
# --no-index: the build backend (hatchling, pinned in the lock) and every dependency come from
# the checked wheels, so nothing unpinned reaches the image.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-index --find-links /wheels "/src[otel]" \
    && /opt/venv/bin/rollgraph --help > /dev/null

# -- runtime -------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="rollgraph" \
      org.opencontainers.image.description="Experimentation and rollout control plane for AI pipelines" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 rollgraph \
    && useradd --system --uid 10001 --gid rollgraph --home-dir /app --shell /usr/sbin/nologin rollgraph
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ROLLGRAPH_ENV=prod
WORKDIR /app
# The default SQLite store (var/rollgraph.db under the working directory) must be writable by
# the unprivileged user; with PostgreSQL nothing is written here.
RUN mkdir /app/var && chown rollgraph:rollgraph /app/var
VOLUME ["/app/var"]
USER 10001:10001
EXPOSE 8000
# /readyz answers 200 once the store is reachable and the migrations are applied. The image has
# no curl, so Python asks. A worker (no HTTP server) replaces this check (see compose.yaml).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]
ENTRYPOINT ["rollgraph"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
