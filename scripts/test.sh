#!/usr/bin/env bash
# Install the test extras and run the whole suite. SQLite and the filesystem broker by
# default; set DATABASE_URL and CELERY_BROKER_URL to test on PostgreSQL and Redis.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
# Lint and the apps' layer contract first (pyproject.toml: [tool.ruff], [tool.importlinter]).
.venv/bin/ruff check .
.venv/bin/lint-imports
exec .venv/bin/python -m pytest "$@"
