"""Breaking things for real: a Celery worker in its own process (to kill), the broker's queues,
and what a receiver that converges (examples/receiver) holds after everything it was sent."""

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import redis
from django.conf import settings
from django.db import connection as db

from cohorts.models import Profile
from cohorts.selectors import cohort_membership
from examples.receiver.cohort_receiver import CohortStore

ROOT = Path(__file__).resolve().parents[2]
QUEUES = ("dispatch", "runs", "celery")


def receiver_holds(receiver, cohort) -> list[str]:
    """The distinct ids a converging receiver holds for `cohort`: every page it answered 2xx,
    applied in order, duplicates (same webhook-id) dropped, full loads applied when complete."""
    store = CohortStore()
    for request in list(receiver.requests):
        if request.answered is not None and 200 <= request.answered < 300:
            store.apply(request.headers["webhook-id"], request.json)
    return store.snapshot().get(f"{cohort.project_id}:{cohort.pk}", [])


def cohort_holds(cohort) -> list[str]:
    members = cohort_membership(cohort=cohort).values("profile_id")
    return sorted(Profile.objects.filter(pk__in=members).values_list("distinct_id", flat=True))


def worker_env(**overrides: str) -> dict[str, str]:
    """The environment of a worker process that sees this test's database and broker."""
    database = db.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}"
                        f"/{database['NAME']}",
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "COHORTSYNC_ALLOW_PRIVATE_URLS": "true",
        "COHORTSYNC_RETRY_DELAYS": ",".join(str(d) for d in settings.COHORTSYNC_RETRY_DELAYS),
        "COHORTSYNC_READ_TIMEOUT": "2",
        "COHORTSYNC_CONNECT_TIMEOUT": "2",
        "LOG_LEVEL": "WARNING",
    }
    env.update(overrides)
    return env


@contextmanager
def celery_worker(log_dir: Path, *, queues=QUEUES, concurrency: int = 1, **env: str):
    """`celery -A config worker` in a process group of its own; killed (if still alive) on exit."""
    name = f"test-{uuid.uuid4().hex[:8]}@%h"
    log = open(log_dir / f"worker-{name[:13]}.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "prefork", "--concurrency",
         str(concurrency), "-Q", ",".join(queues), "-n", name, "--without-gossip", "--without-mingle",
         "--loglevel", "WARNING"],
        cwd=ROOT, env=worker_env(**env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        yield process
    finally:
        kill(process)
        log.close()


def kill(process: subprocess.Popen) -> None:
    """SIGKILL the worker and its pool children: no shutdown handlers, no acks."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def broker_client() -> redis.Redis:
    return redis.Redis.from_url(settings.CELERY_BROKER_URL)


def queued_tasks(queue: str) -> int:
    """Messages waiting in a Redis queue (kombu keeps a list per queue and priority step)."""
    client = broker_client()
    return sum(client.llen(key) for key in client.scan_iter(f"{queue}*") if client.type(key) == b"list")


def purge_queues() -> None:
    client = broker_client()
    for pattern in (*(f"{queue}*" for queue in QUEUES), "unacked*"):
        for key in client.scan_iter(pattern):
            client.delete(key)


def wait_until(condition, what: str, seconds: float = 60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"gave up after {seconds}s waiting for {what}")


class PrivateRedis:
    """A redis-server of the test's own on a free port, without persistence: stopping it
    loses every queued task, as a restarted Redis without AOF does. Never the shared 6379."""

    def __init__(self, folder: Path):
        self.folder = folder
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: self._answers(), "the private redis-server", seconds=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def _answers(self) -> bool:
        try:
            return redis.Redis.from_url(self.url, socket_connect_timeout=0.2).ping()
        except redis.ConnectionError:
            return False


def wait_for_a_blocked_query(seconds: float = 10) -> None:
    """Until another connection's statement waits for a lock (PostgreSQL): a second batch queued
    behind the first one's open transaction."""
    deadline = time.monotonic() + seconds
    with db.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
            if cursor.fetchone()[0]:
                return
            time.sleep(0.01)
    raise AssertionError("the second batch never waited for the first")
