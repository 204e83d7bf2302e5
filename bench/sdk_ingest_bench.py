#!/usr/bin/env python
"""SDK-compatible ingestion through a real HTTP server, on PostgreSQL: Segment /v1/batch and
Mixpanel /import beside our own batch API (POST /api/v1/events/).

    . .venv/bin/activate
    python bench/sdk_ingest_bench.py                   # 200,000 events per endpoint
    python bench/sdk_ingest_bench.py --events 500000 --gzip

Recreates the database named by DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/cohortsync_sdk_bench; its name must contain "bench"
because it is dropped), migrates it, starts ONE gunicorn process (`-w 1`, sync worker: the
per-process figure) on loopback, and POSTs request bodies built beforehand over one
keep-alive connection, one request at a time (`--concurrency N`: N connections at once to
one gthread worker with N threads, still one process). The time is the server's whole work: HTTP,
gzip (with --gzip), JSON, translation, the event id ledger (every Segment and Mixpanel event
carries a `messageId` / `$insert_id`), validation and COPY. Events are spread over the last
4 days, over 20,000 distinct ids.
"""

from __future__ import annotations

import argparse
import gzip
import os
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import django_on_fresh_database  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/cohortsync_sdk_bench"
PEOPLE = 20_000
SEGMENT_BATCH = 1_500  # ≈ 330 KB of these messages: under Segment's 500 KB
MIXPANEL_BATCH = 2_000  # Mixpanel's maximum
OURS_BATCH = 2_000  # the same size, for a like-for-like comparison


def segment_bodies(total: int, now: float) -> list[bytes]:
    bodies = []
    for start in range(0, total, SEGMENT_BATCH):
        batch = [{
            "type": "track", "userId": f"user-{n % PEOPLE}", "event": "Played song", "messageId": str(uuid.uuid4()),
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - n % 345_600)),
            "properties": {"song": f"s{n % 500}", "seconds": n % 300},
            "context": {"library": {"name": "analytics-python", "version": "2.4.0"}, "ip": "10.0.0.1"},
        } for n in range(start, min(total, start + SEGMENT_BATCH))]
        bodies.append(orjson.dumps({"batch": batch}))
    return bodies


def mixpanel_bodies(total: int, now: float) -> list[bytes]:
    return [orjson.dumps([{
        "event": "Played song",
        "properties": {"distinct_id": f"user-{n % PEOPLE}", "time": int(now - n % 345_600), "$insert_id": uuid.uuid4().hex,
                       "song": f"s{n % 500}", "seconds": n % 300, "mp_lib": "python"},
    } for n in range(start, min(total, start + MIXPANEL_BATCH))]) for start in range(0, total, MIXPANEL_BATCH)]


def our_bodies(total: int, now: float) -> list[bytes]:
    return [orjson.dumps({"events": [{
        "distinct_id": f"user-{n % PEOPLE}", "event": "Played song", "time": now - n % 345_600,
        "properties": {"song": f"s{n % 500}", "seconds": n % 300},
    } for n in range(start, min(total, start + OURS_BATCH))]}) for start in range(0, total, OURS_BATCH)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(port: int, threads: int) -> subprocess.Popen:
    gunicorn = Path(sys.executable).parent / "gunicorn"
    if not gunicorn.exists():
        sys.exit("needs gunicorn (the web server measured): pip install gunicorn")
    server = subprocess.Popen(
        [str(gunicorn), "config.wsgi:application", "-w", "1", "-b",
         f"127.0.0.1:{port}", "--log-level", "warning", "--timeout", "120",
         *(["--threads", str(threads)] if threads > 1 else [])],
        cwd=ROOT, env={**os.environ, "COHORTSYNC_API_THROTTLE_RATE": "1000000/min"},
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    sys.exit("gunicorn did not start")


def timed(label: str, url: str, bodies: list[bytes], headers: dict, auth, total: int, compress: bool,
          concurrency: int) -> None:
    import requests

    if compress:
        bodies = [gzip.compress(body, compresslevel=6) for body in bodies]
        headers = {**headers, "Content-Encoding": "gzip"}
    sessions = [requests.Session() for _ in range(concurrency)]
    for session in sessions:
        session.auth = auth

    def send(number: int) -> None:
        for body in bodies[number::concurrency]:
            answer = sessions[number].post(url, data=body, headers=headers, timeout=120)
            assert answer.status_code in (200, 201), (answer.status_code, answer.text[:300])

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(send, range(concurrency)))
    elapsed = time.perf_counter() - started
    print(f"{label:<34} {total:>9,} events {len(bodies):>5} requests {elapsed:7.2f} s = {total / elapsed:>8,.0f} events/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000, help="events per endpoint")
    parser.add_argument("--gzip", action="store_true",
                        help="gzip the SDK request bodies (Content-Encoding: gzip; our batch API takes plain JSON)")
    parser.add_argument("--concurrency", type=int, default=1, help="connections at once, and the worker's threads")
    options = parser.parse_args()

    url = django_on_fresh_database(DEFAULT_DATABASE_URL)
    from django.db import connection

    from access.services import api_key_create
    from cohorts.models import Event, Project
    from sdk_ingest.models import IngestKey
    from sdk_ingest.services import ingest_key_create

    project = Project.objects.create(name="SDK ingestion benchmark")
    write_key = ingest_key_create(project=project, kind=IngestKey.Kind.SEGMENT_WRITE_KEY, name="bench")[1]
    secret = ingest_key_create(project=project, kind=IngestKey.Kind.MIXPANEL_SECRET, name="bench")[1]
    api_key = api_key_create(project=project, name="bench")[1]
    connection.close()

    now = time.time()
    total = options.events
    work = [
        ("our batch API /api/v1/events/", "/api/v1/events/", our_bodies(total, now),
         {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}),
        ("Segment /v1/batch", "/v1/batch", segment_bodies(total, now),
         {"Content-Type": "application/json"}),
        ("Mixpanel /import", "/import", mixpanel_bodies(total, now), {"Content-Type": "application/json"}),
    ]
    port = free_port()
    server = start_server(port, options.concurrency)
    try:
        print(f"PostgreSQL {url.rsplit('/', 1)[-1]}, one gunicorn worker on 127.0.0.1:{port}, "
              f"{options.concurrency} connection(s){', gzip SDK bodies' if options.gzip else ''}")
        for label, path, bodies, headers in work:
            auth = {"/v1/batch": (write_key, ""), "/import": (secret, "")}.get(path)
            timed(label, f"http://127.0.0.1:{port}{path}", bodies, headers, auth, total,
                  options.gzip and path != "/api/v1/events/", options.concurrency)
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert Event.objects.filter(project=project).count() == 3 * total


if __name__ == "__main__":
    main()
