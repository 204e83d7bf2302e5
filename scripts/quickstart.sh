#!/usr/bin/env bash
# One command for a newcomer: install, write a development .env, migrate the embedded SQLite
# database, create the demo, then run the web server, a Celery worker and Celery beat until
# Ctrl-C. Arguments go to `manage.py demo` (e.g. --members 100).
#   QUICKSTART_INSTALL=false  skip the pip install (the tests reuse an installed .venv)
#   QUICKSTART_SERVE=false    stop after the setup, before starting the processes
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
  "$PYTHON" -m venv .venv
fi
if [ "${QUICKSTART_INSTALL:-true}" != false ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e .
fi

# config/settings.py reads .env, so every command run in this checkout (a second terminal's
# manage.py, the worker, beat) shares these settings, not only the processes started here.
if [ ! -e .env ]; then
  cat > .env <<'ENV'
# Development settings for this checkout, written by scripts/quickstart.sh and read by
# config/settings.py (variables set in the environment win). Not for production.
# The demo delivers to the built-in test receiver on 127.0.0.1: allow private addresses.
COHORTSYNC_ALLOW_PRIVATE_URLS=true
# The built-in test receiver at /receiver/<inbox>/ (off unless set).
COHORTSYNC_TEST_RECEIVER=true
ENV
  echo "Wrote .env (development settings: private URLs allowed, the test receiver on)."
else
  echo "Keeping the existing .env."
fi

PY=.venv/bin/python
$PY manage.py migrate --noinput
$PY manage.py demo "$@"
# Queued now, run as soon as the worker is up: Procfile.dev starts the worker only once the
# web server answers, so the first page never meets a closed port.
$PY manage.py shell -c "from deliveries.tasks import dispatch_due_syncs; dispatch_due_syncs.delay()"

cat <<HINTS

Forgot the admin password? Reset it:  .venv/bin/python manage.py changepassword admin
Next, in a second terminal in this folder (or after '. .venv/bin/activate', drop '.venv/bin/'):
  .venv/bin/python manage.py demo --churn 20   # swap 20 % of the members
  .venv/bin/python manage.py runsync 1         # send the difference now (1: the sync id above)
HINTS
if [ "${QUICKSTART_SERVE:-true}" = false ]; then
  exit 0
fi
echo
echo "Starting web (http://127.0.0.1:8000), worker and beat. The first sync lands within a minute at"
echo "  http://127.0.0.1:8000/receiver/demo/   (log in with the admin login above). Ctrl-C stops."
export PATH="$PWD/.venv/bin:$PATH"  # Procfile.dev's python and celery are the .venv's
exec honcho start -f Procfile.dev
