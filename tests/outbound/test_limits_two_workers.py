"""outbound.limits across processes: two workers (`manage.py runsync` subprocesses, each its own
Django, database connection and Redis client) sync two cohorts to one loopback receiver through
one connection. The receiver records when each request arrived and how many were in flight.

Bounds are checked on the recorded timestamps with generous margins, never on tight timing.
PostgreSQL (the subprocesses share the test database) and Redis; the database store is run too.
"""

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.db import connection as db

from deliveries.models import SyncRun
from outbound import limits
from tests.conftest import set_members
from tests.factories import CohortFactory, ConnectionFactory, SyncFactory
from tests.support.receiver import LoopbackReceiver, Reply

pytestmark = pytest.mark.django_db(transaction=True)

BASE_DIR = Path(__file__).resolve().parents[2]


@dataclass
class Arrivals:
    """What the receiver saw: (arrival time, session id) per request, and the most requests in flight."""

    answer: float = 0.02  # seconds each request takes to answer
    first_reply: callable = None  # (arrivals, session) -> Reply | None, for the Retry-After scenario
    seen: list = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request) -> Reply:
        with self.lock:
            self.seen.append((time.monotonic(), request.session_id))
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            reply = self.first_reply(self, request.session_id) if self.first_reply else None
        try:
            time.sleep(self.answer)  # a receiver thread, not a test waiting on time
            return reply or Reply()
        finally:
            with self.lock:
                self.in_flight -= 1

    def sessions(self) -> dict[str, list[float]]:
        by_session: dict[str, list[float]] = {}
        for at, session in self.seen:
            by_session.setdefault(session, []).append(at)
        return by_session


@pytest.fixture(params=["redis", "database"])
def store_url(request, require_postgres, require_redis, settings):
    url = settings.CELERY_BROKER_URL if request.param == "redis" else ""
    settings.COHORTSYNC_LIMITS_REDIS_URL = url
    return url


def two_syncs(receiver: LoopbackReceiver, members: int, **limits_fields):
    connection_fields = dict(url=receiver.url(), page_size=1, **limits_fields)
    connection = None
    syncs = []
    for name in ("one", "two"):
        cohort = CohortFactory(project=connection.project) if connection else CohortFactory()
        connection = connection or ConnectionFactory(project=cohort.project, **connection_fields)
        set_members(cohort, [f"{name}-{i}" for i in range(members)])
        syncs.append(SyncFactory(cohort=cohort, connection=connection))
    _forget(connection.pk)
    return syncs


def _forget(connection_id: int) -> None:
    """Ids are reused across test runs: drop what an earlier run left in Redis under this one."""
    store = limits.store()
    if isinstance(store, limits.RedisStore):
        store.client.delete(*(store._key(connection_id, what) for what in ("next", "not_before", "slots")))


def run_two_workers(syncs, store_url: str) -> None:
    """Both syncs at once, each by its own `manage.py runsync` process; both must succeed."""
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "COHORTSYNC_LIMITS_REDIS_URL": store_url,
        "COHORTSYNC_ALLOW_PRIVATE_URLS": "true",
        "COHORTSYNC_RETRY_DELAYS": "0.05,0.1,0.2,0.4",
    }
    workers = [subprocess.Popen([sys.executable, "manage.py", "runsync", str(sync.pk)], cwd=BASE_DIR, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for sync in syncs]
    outputs = [worker.communicate(timeout=120)[0] for worker in workers]
    for worker, output in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, output
    for sync in syncs:
        assert sync.runs.get().status == SyncRun.Status.SUCCEEDED


def _database_url() -> str:
    settings_dict = db.settings_dict
    return (f"postgres://{settings_dict['USER']}:{settings_dict['PASSWORD'] or ''}@{settings_dict['HOST'] or '127.0.0.1'}"
            f":{settings_dict['PORT'] or 5432}/{settings_dict['NAME']}")


def overlap(a: list[float], b: list[float]) -> bool:
    return max(a[0], b[0]) < min(a[-1], b[-1])


def test_the_request_rate_holds_across_two_workers(store_url):
    arrivals = Arrivals()
    with LoopbackReceiver() as receiver:
        receiver.respond_with(arrivals)
        syncs = two_syncs(receiver, members=10, max_requests_per_second=5)
        run_two_workers(syncs, store_url)

    times = sorted(at for at, _ in arrivals.seen)
    sessions = list(arrivals.sessions().values())
    print(f"\n[{store_url or 'database'}] 20 requests at 5/s over {times[-1] - times[0]:.2f} s; "
          f"shortest gap {min(b - a for a, b in zip(times, times[1:])):.3f} s")
    assert len(times) == 20 and len(sessions) == 2
    assert overlap(*sessions), "the two workers did not send at the same time: the test proves nothing"
    # 20 requests spaced 0.2 s apart take 3.8 s; alone, each worker would have sent at 5/s in 1.8 s.
    assert times[-1] - times[0] >= 3.8 * 0.8
    # In any second, at most the rate (plus one for the window's edges, plus one for scheduling jitter).
    assert max(sum(1 for t in times if start <= t < start + 1.0) for start in times) <= 5 + 2


def test_one_concurrent_run_at_a_time_across_two_workers(store_url):
    arrivals = Arrivals(answer=0.1)
    with LoopbackReceiver() as receiver:
        receiver.respond_with(arrivals)
        syncs = two_syncs(receiver, members=6, max_concurrent_runs=1)
        run_two_workers(syncs, store_url)

    one, two = sorted(arrivals.sessions().values())
    print(f"\n[{store_url or 'database'}] most requests in flight: {arrivals.most_in_flight}")
    assert len(one) == len(two) == 6
    assert not overlap(one, two), "the second run sent while the first still held the only slot"
    assert arrivals.most_in_flight == 1


def test_a_retry_after_slows_the_other_worker_too(store_url):
    hold = 2.0
    refused: list[tuple[float, str]] = []

    def first_reply(arrivals: Arrivals, session: str):
        # The first request after both workers have sent gets the 429: the other one is mid-run.
        if not refused and len(arrivals.sessions()) == 2:
            refused.append((time.monotonic(), session))
            return Reply(status=429, headers={"Retry-After": f"{hold:g}"})
        return None

    arrivals = Arrivals(first_reply=first_reply)
    with LoopbackReceiver() as receiver:
        receiver.respond_with(arrivals)
        syncs = two_syncs(receiver, members=15, max_requests_per_second=8)
        run_two_workers(syncs, store_url)

    (refused_at, refused_session), = refused
    after = [(at - refused_at, session) for at, session in arrivals.seen if at > refused_at]
    others = sorted(delay for delay, session in after if session != refused_session)
    print(f"\n[{store_url or 'database'}] after the 429 (Retry-After {hold:g}): the other worker's requests came "
          f"{', '.join(f'{d:.2f}' for d in others[:3])} s later, the refused one's "
          f"{min(d for d, s in after if s == refused_session):.2f} s")
    assert len(others) >= 2, "the other worker had finished before the 429: the test proves nothing"
    # A request already on its way as the 429 went out is not called back (0.3 s of slack for a loaded machine);
    # every later one, from either worker, waits. Without the shared hold-off the other worker
    # would go on at 8/s: a request every ~0.25 s.
    later = [delay for delay, _ in after if delay > 0.3]
    assert min(later) >= hold * 0.8
