# Two commands set rollgraph up on a fresh machine with Python 3.11: `make run` and `make test`.
# Both create the virtual environment from the lock file themselves.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run demo example test lint typecheck bench bench-http bench-analysis bench-scale soak lock clean \
	console console-if-node console-deps-if-node

# Playwright (a dev dependency) drives Debian's Chromium; it must never fetch a browser.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

# The server on the embedded default (SQLite under var/, no Redis) on PORT (default 8000). A new
# store gets the examples (prod on v3.2, v3.3 rolled out to 10 %); an existing one is kept as the
# user left it. It says which, and prints how to call it and how to put `rollgraph` on PATH.
# Ctrl-C stops it.
PORT ?= 8000
run: $(STAMP) console-if-node
	$(BIN)/python -m demos.server --port $(PORT)

# The console (console/, TypeScript) is built into the package, control_plane/console_dist, and
# committed, so a wheel or a machine without Node serves it; `make console` rebuilds it when its
# sources, its lock file or the API's OpenAPI document changed (Node 20 and npm needed).
CONSOLE_BUILD := control_plane/console_dist/sources.sha256
CONSOLE_SRC := $(shell find console/src console/public console/scripts -type f 2>/dev/null) \
	console/index.html console/package.json console/tsconfig.json console/vite.config.ts
NODE_DEPS := console/node_modules/.package-lock.json

console: $(CONSOLE_BUILD)

$(NODE_DEPS): console/package-lock.json
	cd console && npm ci --no-audit --no-fund

# Rewritten only when the document changed, so an unrelated Python edit rebuilds nothing.
console/openapi.json: $(STAMP) $(shell find control_plane -name '*.py')
	$(BIN)/python -m control_plane.cli.openapi --output $@

$(CONSOLE_BUILD): $(NODE_DEPS) $(CONSOLE_SRC) console/openapi.json
	cd console && npm run gen && npm run build

# `make run` and `make test` on a machine without Node: say so in one line and go on. A failed
# build or `npm ci` (offline, say) does not stop the server or the Python tests either: the
# committed build is served, and the console's tests say what is missing (failing under CI=true).
NO_NODE := console: no Node/npm here, so the committed build is served at /console; to rebuild \
	it, install Node 20 and npm (apt-get install nodejs npm) and run: make console
console-if-node:
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory console || \
		echo "console: the build failed (above); the committed build is served"; \
	else echo "$(NO_NODE)"; fi

console-deps-if-node:
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory $(NODE_DEPS) || \
		echo "console: npm ci failed (above); the console's Node tests will say so"; \
	else echo "$(NO_NODE)"; fi

# Two experiments on simulated users on the `demo` label of product-video (prod is left alone):
# one ramps a candidate worse on a guardrail until it rolls back, one promotes a better one. It
# uses the server at ROLLGRAPH_URL (default http://127.0.0.1:8000, e.g. `make run`) if one
# answers, else its own in-process server on a temporary database; about half a minute.
demo: $(STAMP)
	$(BIN)/python -m demos.experiments

# One workflow run locally with the embedded engine, no server.
example: $(STAMP)
	$(BIN)/rollgraph exec examples/product-video/v3.3.yaml --input prompt="a red sneaker on a rainy street"

# The console's packages (for its vitest and client checks), never a rebuild: a committed build
# that is stale must fail its test, not be silently rebuilt here.
test: $(STAMP) lint typecheck console-deps-if-node
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m benchmarks.engine --json

# wrk (Debian's package) is the load generator, pinned to its own core; installed when missing.
bench-http: $(STAMP)
	command -v wrk >/dev/null || apt-get install -y --no-install-recommends wrk || \
		(apt-get update && apt-get install -y --no-install-recommends wrk)
	$(BIN)/python -m benchmarks.http --json

bench-analysis: $(STAMP)
	$(BIN)/python -m benchmarks.analysis --json

# Async runs through the Redis queue with 1 and 2 `rollgraph worker` processes, and the queue's
# extra latency over a direct run (needs the machine's PostgreSQL and Redis).
bench-scale: $(STAMP)
	$(BIN)/python -m benchmarks.scale --json

# Two replicas and two workers on the machine's PostgreSQL and Redis under mixed traffic from
# wrk (200 clients, SOAK_S seconds, default 300), then a checker: no 5xx, nothing answered lost,
# no accepted run unfinished, counters equal to the store, p50/p99 per route class, RSS.
SOAK_S ?= 300
soak: $(STAMP)
	$(BIN)/python -m benchmarks.soak --json --duration $(SOAK_S)

# Re-pin every dependency (needs `uv`; the lock is committed, so nobody else has to run this).
lock:
	uv pip compile pyproject.toml --extra dev --extra bench --extra otel --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --generate-hashes -o requirements.lock

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
