#!/usr/bin/env python
"""SDK-compatible ingestion through a real HTTP server, on PostgreSQL: Segment /v1/batch and
Mixpanel /import beside our own batch API (POST /api/v1/events/).

    . .venv/bin/activate
    python bench/sdk_ingest_bench.py                   # 200,000 events per endpoint
    python bench/sdk_ingest_bench.py --events 500000 --gzip

Recreates the database named by DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/cohortsync_sdk_bench; its name must contain "bench"
because it is dropped), migrates it, starts ONE gunicorn process (`-w 1`, sync worker: the
per-process figure) on loopback, configured as the Procfile and the settings ship it: 4 threads
(gthread) and database connections kept (`DATABASE_CONN_MAX_AGE` 300), and POSTs request bodies
built beforehand over 4 connections at once (`--concurrency 1 --conn-max-age 0`: one request at
a time to a sync worker with a connection a request, the earlier figure; `--concurrency 2
--threads 1`: two connections to the sync worker, so that it never waits for the client). The time is the server's whole work: HTTP,
gzip (with --gzip), JSON, translation, the event id ledger (every Segment and Mixpanel event
carries a `messageId` / `$insert_id`), validation and COPY. Events are spread over the last
4 days, over 20,000 distinct ids.

Beside the rate, each line gives the worker's CPU time per 1,000 events (user + system, read
from /proc): unlike the rate it does not move much when other work shares the machine. With
`--conn-max-age`, the PostgreSQL backends' CPU time per 1,000 events too (PostgreSQL on this
machine; with the default, each request's backend exits before it can be read).
`--only segment` (or `ours`, `mixpanel`) measures one endpoint; `--profile DIR` records the
worker under py-spy (`pip install py-spy`), one raw (collapsed-stack) file an endpoint.
"""

from __future__ import annotations

import argparse
import gzip
import os
import signal
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
        # As segment-analytics-python sends it: the batch's sentAt (each time is then corrected by it).
        bodies.append(orjson.dumps({"batch": batch, "sentAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}))
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


def start_server(port: int, threads: int, conn_max_age: int) -> subprocess.Popen:
    gunicorn = Path(sys.executable).parent / "gunicorn"
    if not gunicorn.exists():
        sys.exit("needs gunicorn (the web server measured): pip install gunicorn")
    server = subprocess.Popen(
        [str(gunicorn), "config.wsgi:application", "-w", "1", "-b",
         f"127.0.0.1:{port}", "--log-level", "warning", "--timeout", "120",
         *(["--threads", str(threads)] if threads > 1 else [])],
        cwd=ROOT, env={**os.environ, "COHORTSYNC_API_THROTTLE_RATE": "1000000/min",
                       # django-environ reads the persistent-connection setting from the URL's query;
                       # DATABASE_CONN_MAX_AGE, where settings read it, takes precedence over that.
                       "DATABASE_URL": f"{os.environ['DATABASE_URL']}?conn_max_age={conn_max_age}",
                       "DATABASE_CONN_MAX_AGE": str(conn_max_age)},
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    sys.exit("gunicorn did not start")


def worker_pid(server: subprocess.Popen) -> int:
    """The gunicorn worker (the master's one child), which does the requests' work."""
    for _ in range(100):
        children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    sys.exit("gunicorn started no worker")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def database_backends_cpu() -> dict[int, float]:
    """CPU seconds used so far by each PostgreSQL backend connected to the benchmark database
    (same machine); a backend that exits takes its figure with it, so only persistent
    connections (--conn-max-age) give the database's whole work."""
    import psycopg

    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        pids = [pid for (pid,) in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")]
    usage = {}
    for pid in pids:
        try:
            usage[pid] = cpu_seconds(pid)
        except (FileNotFoundError, ProcessLookupError):
            pass  # exited meanwhile
    return usage


def timed(label: str, url: str, bodies: list[bytes], empty: bytes, headers: dict, auth, total: int, compress: bool,
          concurrency: int, worker: int, profile: Path | None, database_cpu: bool) -> None:
    import requests

    if compress:
        bodies = [gzip.compress(body, compresslevel=6) for body in bodies]
        headers = {**headers, "Content-Encoding": "gzip"}
    headers = {**headers, "X-Forwarded-Proto": "https"}  # what the TLS proxy in front adds
    sessions = [requests.Session() for _ in range(concurrency)]
    for session in sessions:
        session.auth = auth

    # An empty batch first on each connection: the worker imports its code and connects before the clock starts.
    for session in sessions:
        answer = session.post(url, data=empty, headers={**headers, "Content-Encoding": "identity"}, timeout=120)
        assert answer.status_code in (200, 201), (answer.status_code, answer.text[:300])

    def send(number: int) -> None:
        for body in bodies[number::concurrency]:
            answer = sessions[number].post(url, data=body, headers=headers, timeout=120)
            assert answer.status_code in (200, 201), (answer.status_code, answer.text[:300])

    spy = None
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        output = profile / f"{label.split()[0].lower()}.txt"
        spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--idle", "--format", "raw", "--rate",
                                "200", "--pid", str(worker), "--output", str(output)], stdout=subprocess.DEVNULL)
        time.sleep(1)  # attached before the first request
    database_before = database_backends_cpu() if database_cpu else None
    cpu_before = cpu_seconds(worker)
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(send, range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(worker) - cpu_before
    database = ""
    if database_before is not None:
        database_after = database_backends_cpu()
        used = sum(after - database_before.get(pid, 0.0) for pid, after in database_after.items())
        database = f"  PostgreSQL CPU {1000 * used / total * 1000:5.1f} ms/1,000 events"
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=30)
    print(f"{label:<34} {total:>9,} events {len(bodies):>5} requests {elapsed:7.2f} s = {total / elapsed:>8,.0f} events/s"
          f"  worker CPU {1000 * cpu / total * 1000:5.1f} ms/1,000 events{database}  (load {os.getloadavg()[0]:.2f})")


def production_environment() -> None:
    """Run as production does (sync_bench.py too): without DEBUG, which keeps a log of every query,
    behind a TLS proxy (the bench sends its X-Forwarded-Proto), with throwaway secrets."""
    os.environ.setdefault("DJANGO_DEBUG", "false")
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-secret-key")
    os.environ.setdefault("COHORTSYNC_ENCRYPTION_KEYS", "YmVuY2gtb25seS1mZXJuZXQta2V5LTMyLWJ5dGVzISE=")
    os.environ.setdefault("DJANGO_BEHIND_TLS_PROXY", "true")


def ledger_fill(project, ids: int) -> None:
    """Event ids received over the last 30 days, as random as SDKs make them (uuid4)."""
    from django.db import connection

    from sdk_ingest.models import ReceivedInsertId

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {ReceivedInsertId._meta.db_table} (project_id, insert_id, received_at)
            SELECT %s, gen_random_uuid()::text, now() - random() * interval '30 days'
            FROM generate_series(1, %s)""", [project.pk, ids])
    print(f"id ledger: {ids:,} ids already received ({time.perf_counter() - started:.1f} s to write them)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000, help="events per endpoint")
    parser.add_argument("--gzip", action="store_true",
                        help="gzip the SDK request bodies (Content-Encoding: gzip; our batch API takes plain JSON)")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="connections at once (default 4: the Procfile's threads a web process)")
    parser.add_argument("--threads", type=int, help="the worker's threads (default: --concurrency; 1: sync worker)")
    parser.add_argument("--conn-max-age", type=int, default=300, metavar="SECONDS",
                        help="DATABASE_CONN_MAX_AGE of the server (default 300, the project's; 0: a connection a request)")
    parser.add_argument("--only", choices=["ours", "segment", "mixpanel"], help="measure one endpoint")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="record the worker under py-spy into DIR")
    parser.add_argument("--ledger", type=int, default=0, metavar="IDS",
                        help="event ids already in the id ledger before the clock starts (a deployment that has "
                             "been receiving for weeks; default 0: a new one)")
    options = parser.parse_args()
    production_environment()

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
    if options.ledger:
        ledger_fill(project, options.ledger)
    connection.close()

    now = time.time()
    total = options.events
    work = [
        ("ours", "our batch API /api/v1/events/", "/api/v1/events/", our_bodies(total, now), b'{"events": []}',
         {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}),
        ("segment", "Segment /v1/batch", "/v1/batch", segment_bodies(total, now), b'{"batch": []}',
         {"Content-Type": "application/json"}),
        ("mixpanel", "Mixpanel /import", "/import", mixpanel_bodies(total, now), b"[]", {"Content-Type": "application/json"}),
    ]
    work = [entry[1:] for entry in work if options.only in (None, entry[0])]
    port = free_port()
    threads = options.threads or options.concurrency
    server = start_server(port, threads, options.conn_max_age)
    worker = worker_pid(server)
    try:
        print(f"PostgreSQL {url.rsplit('/', 1)[-1]}, one gunicorn worker on 127.0.0.1:{port}, "
              f"{threads} thread(s), {options.concurrency} connection(s), CONN_MAX_AGE {options.conn_max_age}{', gzip SDK bodies' if options.gzip else ''}")
        for label, path, bodies, empty, headers in work:
            auth = {"/v1/batch": (write_key, ""), "/import": (secret, "")}.get(path)
            timed(label, f"http://127.0.0.1:{port}{path}", bodies, empty, headers, auth, total,
                  options.gzip and path != "/api/v1/events/", options.concurrency, worker, options.profile,
                  options.conn_max_age > 0)
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert Event.objects.filter(project=project).count() == len(work) * total


if __name__ == "__main__":
    main()
