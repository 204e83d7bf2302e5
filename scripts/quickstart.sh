#!/usr/bin/env bash
# One command for a newcomer: install, migrate the embedded SQLite database, create the
# demo, then run the web server, a Celery worker and Celery beat until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .

export PATH="$PWD/.venv/bin:$PATH"
# The demo delivers to the built-in test receiver on 127.0.0.1, which the SSRF guard
# refuses unless private addresses are allowed (development only).
export COHORTSYNC_ALLOW_PRIVATE_URLS=${COHORTSYNC_ALLOW_PRIVATE_URLS:-true}
export COHORTSYNC_TEST_RECEIVER=${COHORTSYNC_TEST_RECEIVER:-true}

python manage.py migrate --noinput
python manage.py demo "$@"
# Queue one dispatch now, so the first sync goes out as soon as the worker is up
# instead of at beat's first tick.
python manage.py shell -c "from deliveries.tasks import dispatch_due_syncs; dispatch_due_syncs.delay()"
echo
echo "Starting web (http://127.0.0.1:8000), worker and beat. The first sync lands within a minute at"
echo "  http://127.0.0.1:8000/receiver/demo/   (log in with the admin login above)"
echo "Change the cohort with '.venv/bin/python manage.py demo --churn 20' to see add/remove pages. Ctrl-C stops."
exec honcho start -f Procfile.dev
