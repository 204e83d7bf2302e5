#!/usr/bin/env python
"""Sync benchmark: seed N profiles in PostgreSQL, run a full sync and a churn diff sync to a
loopback receiver, and compare with the floor (the same receiver fed pre-serialised pages).

    . .venv/bin/activate
    python bench/sync_bench.py --members 100000
    python bench/sync_bench.py --members 1000000

What it does (see bench/README.md and docs/benchmarks.md):

1. Recreates the database named by DATABASE_URL (default
   postgres://postgres@127.0.0.1:5432/cohortsync_bench; its name must contain "bench"
   because it is dropped), migrates it, and seeds the demo project with the project's own
   services (`call_command("demo", members=N, url=<receiver>)`: COPY of the profiles, one
   INSERT … SELECT for the cohort), then a CHECKPOINT. By default there is no VACUUM or
   ANALYZE anywhere (the user's path: `demo`, `runsync`, `demo --churn`, `runsync`);
   `--settle` runs VACUUM ANALYZE of profiles and cohort before the first run and of them and
   the snapshot between the runs, for the settled figure. `--reuse` keeps the database and its profiles (the demo
   command then only resizes the cohort) and resets the sync.
2. Starts tests/support/receiver.py's LoopbackReceiver (record_bodies=False) in this
   process; it answers every page with the contract's success echo.
3. FLOOR: a fresh child process POSTs the same number of pre-serialised pages (orjson
   bodies of 1000 members built with integrations.payloads from the same demo rows, so the
   same size as the engine's) over one keep-alive requests.Session. A second child
   ("e2e floor") streams the cohort ⋈ profiles through a server-side cursor, builds and
   POSTs the pages: the hand-written end-to-end path of the floor in docs/benchmarks.md.
4. Full sync, then `demo_cohort_churn(percent=--churn / 2)`, then a diff sync. Each sync runs
   in a fresh child process (this script with --child sync) calling
   deliveries.engine.sync_run() directly, so seeding does not pollute its memory. Peak RSS
   is that child's ru_maxrss (os.wait4), including the ~80–90 MB of Python + Django
   imports; the RSS after django.setup() is shown beside it. Wall time is measured around
   sync_run() only (no interpreter start-up), and the engine's stage functions are
   wrapped with timers (a few perf_counter calls a page) for the phase breakdown.
5. Rows written: deltas of pg_stat_user_tables n_tup_ins / n_tup_del for the snapshot
   (delivered state) and the staging table, and the WAL generated (pg_current_wal_lsn,
   pg_stat_wal; both cluster-wide).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from io import StringIO
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/cohortsync_bench"
DEFAULT_PROPERTIES = "plan,score,beta"
PAGE_SIZE = 1000  # outbound.policy.PAGE_SIZE; checked after django.setup()
FLOOR_DISTINCT_PAGES = 64  # the floor cycles through this many distinct pre-built bodies


# --- environment ------------------------------------------------------------------------


def configure_environment() -> None:
    os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["COHORTSYNC_ALLOW_PRIVATE_URLS"] = "true"
    # Production runs without DEBUG (DEBUG keeps a log of every query).
    os.environ.setdefault("DJANGO_DEBUG", "false")
    # Which production refuses to start without: throwaway values for a benchmark database.
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-secret-key")
    os.environ.setdefault("COHORTSYNC_ENCRYPTION_KEYS", "YmVuY2gtb25seS1mZXJuZXQta2V5LTMyLWJ5dGVzISE=")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    scheme = urlsplit(os.environ["DATABASE_URL"]).scheme
    if scheme not in ("postgres", "postgresql", "pgsql", "postgis"):
        sys.exit(f"DATABASE_URL must point at PostgreSQL (got scheme {scheme!r}).")


def django_setup() -> None:
    import django

    django.setup()


def database_name() -> str:
    return urlsplit(os.environ["DATABASE_URL"]).path.lstrip("/")


def maintenance_url() -> str:
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))


def libpq_url() -> str:
    return urlunsplit(urlsplit(os.environ["DATABASE_URL"])._replace(scheme="postgresql"))


def prepare_database(*, recreate: bool) -> bool:
    """Create the benchmark database (dropping it first when `recreate`); True if created."""
    import psycopg
    from psycopg import sql

    name = database_name()
    if "bench" not in name:
        sys.exit(f"Refusing to use database {name!r}: the benchmark drops and recreates its database, "
                 "so its name must contain 'bench'.")
    with psycopg.connect(maintenance_url(), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None
        if exists and not recreate:
            return False
        if exists:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return True


def server_facts() -> dict:
    from django.db import connection as db

    with db.cursor() as cursor:
        cursor.execute("SELECT current_setting('server_version'), current_setting('shared_buffers'), "
                       "current_setting('synchronous_commit'), current_setting('work_mem')")
        version, shared_buffers, synchronous_commit, work_mem = cursor.fetchone()
    return {
        "nproc": os.cpu_count(),
        "postgresql": version,
        "shared_buffers": shared_buffers,
        "synchronous_commit": synchronous_commit,
        "work_mem": work_mem,
        "python": sys.version.split()[0],
    }


# --- seeding ----------------------------------------------------------------------------


def seed(*, members: int, url: str, properties: list[str], vacuum_empty_snapshot: bool = False,
         vacuum_analyze: bool = False) -> dict:
    """The demo project at `members` members pointing at `url`; returns ids and timings."""
    from django.core.management import call_command
    from django.db import connection as db

    from cohorts.models import Cohort, CohortMember
    from deliveries.management.commands.demo import COHORT_NAME, PROJECT_NAME
    from deliveries.models import SnapshotMember, Sync, SyncRun

    existing = 0
    cohort = Cohort.objects.filter(project__name=PROJECT_NAME, name=COHORT_NAME).first()
    if cohort is not None:
        existing = CohortMember.objects.filter(cohort=cohort).count()
    started = time.perf_counter()
    with db.cursor() as cursor:
        # demo_cohort_fill's INSERT … SELECT … WHERE NOT EXISTS (same table) is planned as a
        # nested loop over a seq scan of the table it fills when that table looks empty:
        # quadratic (143 s for 100k members, hours for 1M). Seeding is not what we measure,
        # so the benchmark steers the planner away from it for this one command.
        cursor.execute("SET enable_nestloop = off")
    try:
        call_command("demo", members=members, url=url, stdout=StringIO())
    finally:
        with db.cursor() as cursor:
            cursor.execute("RESET enable_nestloop")
    seeded = time.perf_counter() - started
    cohort = Cohort.objects.get(project__name=PROJECT_NAME, name=COHORT_NAME)
    sync = Sync.objects.get(cohort=cohort)
    # A clean slate for the sync: no delivered state, never run, not claimed.
    with db.cursor() as cursor:
        cursor.execute(f"DELETE FROM {SnapshotMember._meta.db_table} WHERE sync_id = %s", [sync.pk])
    SyncRun.objects.filter(sync=sync).delete()
    Sync.objects.filter(pk=sync.pk).update(
        properties=properties, snapshot_at=None, snapshot_size=0, force_full=False, state=Sync.State.ACTIVE,
        claimed_until=None, claim_token=None, last_error_message="", last_error_status=None,
    )
    started = time.perf_counter()
    # The user's path (`demo`, then `runsync` at once): statistics as the seeding left them.
    # --settle: profiles and cohort as autovacuum would leave them later. The snapshot table
    # is left as a fresh deployment has it (never analysed), which is what a first run meets.
    settle((["cohorts_profile", "cohorts_cohortmember"] if vacuum_analyze else [])
           + (["deliveries_snapshotmember"] if vacuum_empty_snapshot else []))
    settled = time.perf_counter() - started
    return {
        "sync_id": sync.pk, "cohort_id": cohort.pk, "reused_members": min(existing, members),
        "seed_s": seeded, "settle_s": settled,
    }


def settle(tables: list[str]) -> None:
    """What autovacuum would have done by the next scheduled run, then a checkpoint so the
    seeding's dirty pages are not written back in the middle of a timed sync."""
    from django.db import connection as db

    with db.cursor() as cursor:
        for table in tables:
            cursor.execute(f"VACUUM ANALYZE {table}")
        cursor.execute("CHECKPOINT")


def churn(*, cohort_id: int, percent: float) -> dict:
    from cohorts.demo import demo_cohort_churn
    from cohorts.models import Cohort

    cohort = Cohort.objects.select_related("project").get(pk=cohort_id)
    started = time.perf_counter()
    # --churn counts changed rows: half of them swapped out, as many new ones in.
    removed, added = demo_cohort_churn(cohort=cohort, percent=percent / 2)
    return {"removed": removed, "added": added, "churn_s": time.perf_counter() - started}


# --- counters ---------------------------------------------------------------------------


def table_counters() -> dict:
    from django.db import connection as db

    with db.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT relname, n_tup_ins, n_tup_del, n_tup_upd FROM pg_stat_user_tables "
            "WHERE relname IN ('deliveries_snapshotmember', 'deliveries_stagedmember')"
        )
        counters = {name: (ins, dele, upd) for name, ins, dele, upd in cursor.fetchall()}
        cursor.execute("SELECT pg_current_wal_lsn()::text")
        counters["wal_lsn"] = cursor.fetchone()[0]
        cursor.execute("SELECT wal_fpi FROM pg_stat_wal")  # cluster-wide, PostgreSQL 14+
        counters["wal_fpi"] = cursor.fetchone()[0]
    return counters


def settled_counters(previous: dict | None = None) -> dict:
    """The counters once the finished child's backend has flushed its statistics (it does
    so as it exits, a moment after the client has gone)."""
    time.sleep(0.2)
    last = table_counters()
    for _ in range(25):
        time.sleep(0.2)
        current = table_counters()
        if {k: v for k, v in current.items() if k not in ("wal_lsn", "wal_fpi")} == \
                {k: v for k, v in last.items() if k not in ("wal_lsn", "wal_fpi")}:
            return current
        last = current
    return last


def counter_deltas(before: dict, after: dict) -> dict:
    from django.db import connection as db

    def delta(table, index):
        return after.get(table, (0, 0, 0))[index] - before.get(table, (0, 0, 0))[index]

    with db.cursor() as cursor:
        cursor.execute("SELECT pg_wal_lsn_diff(%s::pg_lsn, %s::pg_lsn)", [after["wal_lsn"], before["wal_lsn"]])
        wal = int(cursor.fetchone()[0])
    return {
        "snapshot_inserted": delta("deliveries_snapshotmember", 0),
        "snapshot_deleted": delta("deliveries_snapshotmember", 1),
        "snapshot_updated": delta("deliveries_snapshotmember", 2),
        "staged_inserted": delta("deliveries_stagedmember", 0),
        "staged_deleted": delta("deliveries_stagedmember", 1),
        "wal_bytes": wal,
        "wal_full_page_images": after["wal_fpi"] - before["wal_fpi"],
    }


# --- the receiver -----------------------------------------------------------------------


class CountingReceiver:
    """LoopbackReceiver(record_bodies=False) that also counts body bytes and answers the
    contract's success echo without parsing the body (so the receiver's own JSON decoding
    does not weigh on the floor or on the engine)."""

    def __init__(self):
        from tests.support.receiver import LoopbackReceiver, Reply

        self._reply = Reply
        self.receiver = LoopbackReceiver(record_bodies=False)
        self.receiver.respond_with(self._respond)
        self.bytes = 0
        self._lock = threading.Lock()
        self._echo = {}

    def _respond(self, request):
        body = request.body
        with self._lock:
            self.bytes += len(body)
        start = body.find(b'"action":"')
        action = body[start + 10: body.find(b'"', start + 10)].decode() if start >= 0 else None
        echo = self._echo.get(action)
        if echo is None:
            echo = self._echo[action] = json.dumps({"action": action, "status": "success"}).encode()
        return self._reply(body=echo)

    def start(self):
        self.receiver.start()
        return self

    def stop(self):
        self.receiver.stop()

    def url(self) -> str:
        return self.receiver.url("/hook")

    def reset(self) -> None:
        self.receiver.clear()
        with self._lock:
            self.bytes = 0

    @property
    def count(self) -> int:
        return self.receiver.count

    @property
    def connections(self) -> int:
        return self.receiver.connections


# --- children ---------------------------------------------------------------------------


def run_child(args: list[str], *, profile: str | None = None) -> dict:
    """Run this script as a fresh child; returns its JSON result plus its peak RSS.

    With `profile` (a path without extension) the child runs under py-spy, which writes
    PATH.txt (collapsed stacks) and PATH.svg (flame graph); timings then include its overhead.
    """
    with tempfile.NamedTemporaryFile(prefix="sync_bench_", suffix=".json", delete=False) as handle:
        out = handle.name
    command = [sys.executable, __file__, "--child-out", out, *args]
    if profile:
        Path(profile).parent.mkdir(parents=True, exist_ok=True)
        command = ["py-spy", "record", "--rate", "250", "--format", "raw", "--output", f"{profile}.txt", "--",
                   *command]
    try:
        child = subprocess.Popen(command, cwd=ROOT)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            sys.exit(f"child {' '.join(args)} failed with exit code {child.returncode}")
        result = json.loads(Path(out).read_text())
    finally:
        Path(out).unlink(missing_ok=True)
    result["maxrss_kb"] = usage.ru_maxrss  # kilobytes on Linux
    if profile:
        result["maxrss_kb"] = result.get("maxrss_self_kb", usage.ru_maxrss)  # not py-spy's own
        collapsed_to_svg(f"{profile}.txt", f"{profile}.svg")
    return result


def collapsed_to_svg(collapsed: str, svg: str) -> None:
    """py-spy's raw output is flamegraph.pl's input; make the SVG when inferno or flamegraph.pl is around."""
    import shutil

    for tool in ("inferno-flamegraph", "flamegraph.pl"):
        if shutil.which(tool):
            with open(collapsed) as source, open(svg, "w") as target:
                subprocess.run([tool], stdin=source, stdout=target, check=False)
            return


def vm_rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Timers:
    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds
        self.calls[name] = self.calls.get(name, 0) + 1

    def wrap(self, module, attribute: str, name: str | None = None) -> None:
        original = getattr(module, attribute, None)
        if original is None:  # the engine changed shape: that phase shows as "-"
            return
        name = name or attribute
        timers = self

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                timers.add(name, time.perf_counter() - started)

        setattr(module, attribute, timed)

    def wrap_generator(self, module, attribute: str, name: str) -> None:
        """Time each next() of a generator function (the page reads of stream_pages)."""
        original = getattr(module, attribute, None)
        if original is None:
            return
        timers = self

        def timed(*args, **kwargs):
            iterator = original(*args, **kwargs)
            while True:
                started = time.perf_counter()
                try:
                    item = next(iterator)
                except StopIteration:
                    timers.add(name, time.perf_counter() - started)
                    return
                timers.add(name, time.perf_counter() - started)
                yield item

        setattr(module, attribute, timed)


def child_sync(sync_id: int, full: bool) -> dict:
    """One run of the engine, timed by phase. Runs in a fresh process."""
    django_setup()
    from django.db import connection as db

    from deliveries import engine, services
    from deliveries.engine import commit, run as engine_run, send
    from deliveries.models import SyncRun
    from integrations import payloads
    from outbound import sender
    from outbound.models import DeliveryAttempt

    rss_after_setup = vm_rss_kb()
    timers = Timers()
    timers.wrap(services, "sync_claim", "claim")
    timers.wrap(engine_run, "stage_members", "stage")
    timers.wrap(engine_run, "deliver_run", "deliver")
    timers.wrap_generator(send, "stream_pages", "read_build")
    timers.wrap(payloads, "mixpanel_page", "render")  # member dicts + encode
    timers.wrap(payloads, "mixpanel_body", "encode")
    timers.wrap(send, "send_page", "send_page")
    timers.wrap(sender, "post_page", "post")
    timers.wrap(engine.RunRecords, "hold_claim", "claim_check")
    timers.wrap(engine.RunRecords, "flush", "records")
    timers.wrap(engine_run, "finish_run", "finish")
    timers.wrap(commit, "commit_snapshot", "commit")
    timers.wrap(services, "sync_release", "release")

    started = time.perf_counter()
    run = engine.sync_run(sync_id=sync_id, full=full, trigger="cli")
    wall = time.perf_counter() - started
    maxrss_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if run is None:
        raise SystemExit("the sync could not be claimed")
    run = SyncRun.objects.get(pk=run.pk)
    attempts = DeliveryAttempt.objects.filter(run=run).count()
    db.close()
    return {
        "wall_s": wall,
        "status": run.status,
        "kind": run.kind,
        "reason": run.reason,
        "error": run.error_message,
        "members": run.members_count,
        "adds": run.adds_count,
        "removes": run.removes_count,
        "pages": run.pages_delivered,
        "total_pages": run.total_pages,
        "attempts": attempts,
        "db_started_to_finished_s": (run.finished_at - run.started_at).total_seconds() if run.finished_at else None,
        "timers": timers.seconds,
        "calls": timers.calls,
        "rss_after_setup_kb": rss_after_setup,
        "maxrss_self_kb": maxrss_self,
    }


def floor_pages(*, count: int, properties: tuple[str, ...]) -> list[bytes]:
    """Bodies of 1000 demo members each, exactly as the engine shapes them."""
    from cohorts.demo import demo_profile_rows
    from integrations import payloads

    parameters = {
        "mixpanel_project_id": "1", "mixpanel_cohort_id": "1", "mixpanel_cohort_name": "Demo cohort",
        "mixpanel_cohort_description": "Generated people for the demo", "mixpanel_session_id": str(uuid.uuid4()),
    }
    bodies = []
    for page in range(count):
        members = [
            payloads.mixpanel_member(payloads.MemberRow(*row[:5], row[5] if properties else None), properties)
            for row in demo_profile_rows(page * PAGE_SIZE + 1, PAGE_SIZE)
        ]
        bodies.append(payloads.mixpanel_body(action="members", parameters=parameters, total_pages=count,
                                             page_count=page + 1, members=members))
    return bodies


def post_all(url: str, bodies, pages: int) -> None:
    import requests

    session_id = uuid.uuid4()
    with requests.Session() as session:
        for page, body in zip(range(pages), bodies):
            response = session.post(url, data=body, timeout=(5, 30), headers={
                "Content-Type": "application/json", "webhook-id": str(uuid.uuid5(session_id, str(page + 1))),
            })
            _ = response.content  # read it all: the connection goes back to the pool
            if response.status_code != 200:
                raise SystemExit(f"floor: page {page + 1} answered {response.status_code}")


def child_floor(url: str, pages: int, properties: tuple[str, ...]) -> dict:
    """POST `pages` pre-serialised pages over one keep-alive session."""
    django_setup()
    distinct = floor_pages(count=min(pages, FLOOR_DISTINCT_PAGES), properties=properties)
    sizes = [len(body) for body in distinct]

    def cycle():
        while True:
            yield from distinct

    started = time.perf_counter()
    post_all(url, cycle(), pages)
    wall = time.perf_counter() - started
    return {"wall_s": wall, "pages": pages, "mean_body_bytes": sum(sizes) / len(sizes)}


def child_e2e(url: str, cohort_id: int, properties: tuple[str, ...]) -> dict:
    """The hand-written end-to-end path: server-side cursor → orjson pages → POST."""
    django_setup()
    import psycopg
    import requests

    from integrations import payloads

    parameters = {
        "mixpanel_project_id": "1", "mixpanel_cohort_id": str(cohort_id), "mixpanel_cohort_name": "Demo cohort",
        "mixpanel_cohort_description": "Generated people for the demo", "mixpanel_session_id": str(uuid.uuid4()),
    }
    rss_after_setup = vm_rss_kb()
    started = time.perf_counter()
    pages = 0
    with psycopg.connect(libpq_url()) as conn, requests.Session() as session:
        count = conn.execute("SELECT COUNT(*) FROM cohorts_cohortmember WHERE cohort_id = %s", [cohort_id]).fetchone()[0]
        total_pages = max(1, math.ceil(count / PAGE_SIZE))
        with conn.cursor(name="members") as cursor:
            cursor.execute(
                "SELECT p.distinct_id, p.email, p.first_name, p.last_name, p.phone_number, p.properties::text "
                "FROM cohorts_cohortmember m JOIN cohorts_profile p ON p.id = m.profile_id "
                "WHERE m.cohort_id = %s ORDER BY m.profile_id",
                [cohort_id],
            )
            while rows := cursor.fetchmany(PAGE_SIZE):
                pages += 1
                # The engine's own member builder, fed the cursor's tuples directly.
                members = payloads.mixpanel_members(rows, properties)
                body = payloads.mixpanel_body(action="members", parameters=parameters, total_pages=total_pages,
                                              page_count=pages, members=members)
                response = session.post(url, data=body, timeout=(5, 30), headers={
                    "Content-Type": "application/json",
                    "webhook-id": str(uuid.uuid5(uuid.UUID(parameters["mixpanel_session_id"]), str(pages))),
                })
                _ = response.content
                if response.status_code != 200:
                    raise SystemExit(f"e2e floor: page {pages} answered {response.status_code}")
    return {"wall_s": time.perf_counter() - started, "pages": pages, "rss_after_setup_kb": rss_after_setup}


# --- the parent -------------------------------------------------------------------------


def measure_sync(receiver: CountingReceiver, *, sync_id: int, full: bool, profile: str | None = None) -> dict:
    receiver.reset()
    load = os.getloadavg()[0]
    # This process's own writes (seeding, churn, --reuse's reset) must not be counted in the
    # run: its backend flushes its statistics when it exits.
    from django.db import connection as db

    db.close()
    before = settled_counters()
    result = run_child(["--child", "sync", "--sync-id", str(sync_id)] + (["--full"] if full else []),
                       profile=profile)
    after = settled_counters()
    result.update(counter_deltas(before, after))
    result["requests"] = receiver.count
    result["body_bytes"] = receiver.bytes
    result["loadavg_before"] = load
    if result["status"] != "succeeded":
        sys.exit(f"the {result['kind']} run {result['status']}: {result['error']}")
    return result


def mb(kb: int) -> str:
    return f"{kb / 1024:.0f} MB"


def print_report(*, args, facts, seeding, floor, e2e, full, churned, diff) -> None:
    members = full["members"]
    sent_diff = diff["adds"] + diff["removes"]

    def phases(result):
        timers = result["timers"]

        class Missing(Exception):
            pass

        class Times(dict):
            def __missing__(self, key):
                raise Missing(key)

        t = Times(timers)

        def value(expression):
            try:
                return expression()
            except Missing:
                return None

        other = value(lambda: result["wall_s"] - t["claim"] - t["stage"] - t["deliver"] - t["finish"])
        send_other = value(lambda: t["send_page"] - t["post"] - t["claim_check"] - t["records"])
        deliver_other = value(lambda: t["deliver"] - t["read_build"] - t["render"] - t["send_page"])
        commit = timers.get("commit")
        finish_other = value(lambda: t["finish"] - t["commit"])
        return [
            ("stage (INSERT … SELECT into staging)", timers.get("stage")),
            ("send: read pages (SQL + rows)", timers.get("read_build")),
            ("send: build member dicts + encode", timers.get("render")),
            ("send: of which orjson encode", timers.get("encode")),
            ("send: HTTP POST (post_page)", timers.get("post")),
            ("send: claim checks and renewals", timers.get("claim_check")),
            ("send: attempt + progress rows (batched)", timers.get("records")),
            ("send: rest of send_page", send_other),
            ("send: rest of the page loop", deliver_other),
            ("commit snapshot (statements)", commit),
            ("finish: run + sync rows, COMMIT", finish_other),
            ("claim, run row, staging cleanup, release", other),
        ]

    rows = [
        ("run (kind, reason)", f"{full['kind']}, {full['reason']}", f"{diff['kind']}, {diff['reason']}"),
        ("members sent", f"{members:,}", f"{sent_diff:,} ({diff['adds']:,} add, {diff['removes']:,} remove)"),
        ("pages (requests received)", f"{full['pages']} ({full['requests']})", f"{diff['pages']} ({diff['requests']})"),
        ("mean body / member", (f"{full['body_bytes'] / max(1, full['requests']) / 1024:.0f} KB / "
                                f"{full['body_bytes'] / max(1, members):.0f} B"), "-"),
        ("wall time of sync_run()", f"{full['wall_s']:.2f} s", f"{diff['wall_s']:.2f} s"),
        ("members/s", f"{members / full['wall_s']:,.0f}", f"{sent_diff / diff['wall_s']:,.0f}"),
        ("cohort members/s (diff: cohort size / wall)", "-", f"{members / diff['wall_s']:,.0f}"),
    ]
    def seconds(value):
        return "-" if value is None else f"{value:.2f} s"

    rows += [(name, seconds(f), seconds(d)) for (name, f), (_, d) in zip(phases(full), phases(diff))]
    rows += [
        ("SyncRun started_at → finished_at", seconds(full["db_started_to_finished_s"]),
         seconds(diff["db_started_to_finished_s"])),
        ("peak RSS of the sync process (ru_maxrss)", mb(full["maxrss_kb"]), mb(diff["maxrss_kb"])),
        ("  of which Python + Django after setup", mb(full["rss_after_setup_kb"]), mb(diff["rss_after_setup_kb"])),
        ("snapshot rows inserted + deleted", f"{full['snapshot_inserted']:,} + {full['snapshot_deleted']:,}",
         f"{diff['snapshot_inserted']:,} + {diff['snapshot_deleted']:,}"),
        ("staging rows inserted + deleted", f"{full['staged_inserted']:,} + {full['staged_deleted']:,}",
         f"{diff['staged_inserted']:,} + {diff['staged_deleted']:,}"),
        ("WAL written during the run (full-page images)",
         f"{full['wal_bytes'] / 2**20:.1f} MB ({full['wal_full_page_images']:,})",
         f"{diff['wal_bytes'] / 2**20:.1f} MB ({diff['wal_full_page_images']:,})"),
    ]
    if floor:
        rows += [
            ("FLOOR: same pages pre-serialised, 1 Session",
             f"{floor['wall_s']:.2f} s ({floor['mean_body_bytes'] / 1024:.0f} KB/page)", "-"),
            ("ratio sync / floor", f"{full['wall_s'] / floor['wall_s']:.1f}x", "-"),
        ]
    if e2e:
        rows += [
            ("e2e floor: PG cursor → orjson → POST", f"{e2e['wall_s']:.2f} s, {mb(e2e['maxrss_kb'])}", "-"),
            ("ratio sync / e2e floor", f"{full['wall_s'] / e2e['wall_s']:.1f}x", "-"),
        ]

    width = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows + [("", "full sync", "")])
    w2 = max(len(r[2]) for r in rows + [("", "", f"diff sync ({args.churn:g}% churn)")])
    print()
    print(f"Cohortsync sync benchmark — {members:,} members, {facts['nproc']} CPUs, PostgreSQL "
          f"{facts['postgresql']} (shared_buffers {facts['shared_buffers']}, synchronous_commit "
          f"{facts['synchronous_commit']}), Python {facts['python']}")
    maintenance = "VACUUM ANALYZE + CHECKPOINT" if args.settle else "CHECKPOINT (no VACUUM/ANALYZE: the user's path)"
    print(f"seeding: {seeding['seed_s']:.1f} s (demo command; {seeding['reused_members']:,} members reused), "
          f"{maintenance} {seeding['settle_s']:.1f} s; churn {churned['churn_s']:.1f} s "
          f"(removed {churned['removed']:,}, added {churned['added']:,}) + {maintenance} {churned['settle_s']:.1f} s")
    line = f"+-{'-' * width}-+-{'-' * w1}-+-{'-' * w2}-+"
    loads = [f"{name} {r['loadavg_before']:.2f}" for name, r in (("floor", floor), ("full", full), ("diff", diff)) if r]
    print(f"1-minute load average before each step (other work on the machine skews timings): {', '.join(loads)}")
    print(line)
    print(f"| {'':{width}} | {'full sync':>{w1}} | {f'diff sync ({args.churn:g}% churn)':>{w2}} |")
    print(line)
    for name, a, b in rows:
        print(f"| {name:{width}} | {a:>{w1}} | {b:>{w2}} |")
    print(line)
    print("Peak RSS: ru_maxrss of a fresh child process that only sets up Django and calls "
          "engine.sync_run(); wall time excludes interpreter start-up. WAL and full-page images are "
          "cluster-wide: other databases' writes during the run count too.")
    if members >= 1_000_000 and floor:
        ratio = full["wall_s"] / floor["wall_s"]
        print("Targets (1M members, 2 cores):")
        print(f"  full sync within 3x of the floor: {ratio:.1f}x — {'met' if ratio <= 3 else 'MISSED'}")
        peak = max(full["maxrss_kb"], diff["maxrss_kb"]) / 1024
        print(f"  peak RSS under 300 MB: {peak:.0f} MB — {'met' if peak < 300 else 'MISSED'}")
        print(f"  1%-churn diff under 2 s, including its snapshot commit: {diff['wall_s']:.2f} s — "
              f"{'met' if diff['wall_s'] < 2 else 'MISSED'}")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=100_000, help="cohort size (default 100,000)")
    parser.add_argument("--churn", type=float, default=1.0,
                        help="%% of rows changed before the diff run (half removed, as many new; default 1)")
    parser.add_argument("--properties", default=DEFAULT_PROPERTIES,
                        help=f"profile properties the sync exports (default {DEFAULT_PROPERTIES!r}; '' for none)")
    parser.add_argument("--reuse", action="store_true",
                        help="keep an existing benchmark database and its profiles instead of recreating it")
    parser.add_argument("--no-floor", action="store_true", help="skip the floor measurements")
    parser.add_argument("--settle", action="store_true",
                        help="VACUUM ANALYZE profiles and cohort before the first run, and them and the snapshot "
                             "between the full and the diff run (the settled figure; default: the user's path, "
                             "no VACUUM/ANALYZE between runs)")
    parser.add_argument("--vacuum-empty-snapshot", action="store_true",
                        help="VACUUM ANALYZE the still empty snapshot table before the first run (statistics "
                             "that say 'empty', as after deleting every sync or a vacuumdb --analyze)")
    parser.add_argument("--profile", metavar="DIR",
                        help="run the two syncs under py-spy (pip install py-spy); writes DIR/full.txt and "
                             "DIR/diff.txt (collapsed stacks; .svg too if inferno or flamegraph.pl is installed)")
    parser.add_argument("--json", metavar="PATH", help="also write every figure to this JSON file")
    # Internal: the children.
    parser.add_argument("--child", choices=["sync", "floor", "e2e"], help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    parser.add_argument("--sync-id", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cohort-id", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--full", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--pages", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    configure_environment()
    properties = tuple(p.strip() for p in args.properties.split(",") if p.strip())

    if args.child:
        if args.child == "sync":
            result = child_sync(args.sync_id, args.full)
        elif args.child == "floor":
            result = child_floor(args.url, args.pages, properties)
        else:
            result = child_e2e(args.url, args.cohort_id, properties)
        Path(args.child_out).write_text(json.dumps(result))
        return

    if args.members < 1:
        sys.exit("--members must be at least 1.")
    created = prepare_database(recreate=not args.reuse)
    django_setup()
    from django.core.management import call_command

    from outbound import policy

    assert policy.PAGE_SIZE == PAGE_SIZE, "the floor's page size must match the engine's"
    print(f"database {database_name()}: {'created' if created else 'reused'}; migrating …", flush=True)
    call_command("migrate", verbosity=0)
    facts = server_facts()

    receiver = CountingReceiver().start()
    try:
        print(f"seeding {args.members:,} members …", flush=True)
        seeding = seed(members=args.members, url=receiver.url(), properties=list(properties),
                       vacuum_empty_snapshot=args.vacuum_empty_snapshot, vacuum_analyze=args.settle)
        pages = max(1, math.ceil(args.members / PAGE_SIZE))
        floor = e2e = None
        if not args.no_floor:
            print("floor: pre-serialised pages over one Session …", flush=True)
            receiver.reset()
            load = os.getloadavg()[0]
            floor = run_child(["--child", "floor", "--url", receiver.url(), "--pages", str(pages),
                               "--properties", ",".join(properties)])
            floor["requests"], floor["body_bytes"], floor["loadavg_before"] = receiver.count, receiver.bytes, load
            print(f"  {floor['wall_s']:.2f} s for {pages} pages", flush=True)
            print("e2e floor: server-side cursor → orjson → POST …", flush=True)
            receiver.reset()
            e2e = run_child(["--child", "e2e", "--url", receiver.url(), "--cohort-id", str(seeding["cohort_id"]),
                             "--properties", ",".join(properties)])
            print(f"  {e2e['wall_s']:.2f} s", flush=True)
        print("full sync …", flush=True)
        full = measure_sync(receiver, sync_id=seeding["sync_id"], full=False,  # the first run is a full one
                            profile=args.profile and f"{args.profile}/full")
        print(f"  {full['wall_s']:.2f} s", flush=True)
        print(f"churn {args.churn:g}% …", flush=True)
        churned = churn(cohort_id=seeding["cohort_id"], percent=args.churn)
        started = time.perf_counter()
        # Default: the user's path, `demo --churn` then `runsync` at once, with the statistics
        # the first run left (a CHECKPOINT only, so dirty pages are not written mid-run).
        settle(["cohorts_profile", "cohorts_cohortmember", "deliveries_snapshotmember"] if args.settle else [])
        churned["settle_s"] = time.perf_counter() - started
        print("diff sync …", flush=True)
        diff = measure_sync(receiver, sync_id=seeding["sync_id"], full=False,
                            profile=args.profile and f"{args.profile}/diff")
        print(f"  {diff['wall_s']:.2f} s", flush=True)
    finally:
        receiver.stop()

    print_report(args=args, facts=facts, seeding=seeding, floor=floor, e2e=e2e, full=full, churned=churned,
                 diff=diff)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "members": args.members, "churn_percent": args.churn, "properties": list(properties), "machine": facts,
            "seeding": seeding, "floor": floor, "e2e_floor": e2e, "full": full, "churn": churned, "diff": diff,
        }, indent=2))


if __name__ == "__main__":
    main()
