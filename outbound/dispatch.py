"""Getting runs to a worker, whatever the broker or the workers are doing: the pieces syncs
(deliveries.dispatch) and user messages share.

The dispatcher, not the request, guarantees that a run starts: each tick enqueues what is due
and re-enqueues queued runs whose task never started, and marks what it enqueued
(`dispatched_until`) in the same UPDATE that picks it. A marked row is left alone until its
task has started or expired (the task's `expires` is the same instant), so however long the
workers are away there is one live task per subject or queued run, never one per tick.
"""

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection as db, transaction
from django.db.models import Q, QuerySet

from .errors import BrokerUnavailable


def dispatch_lease() -> timedelta:
    return timedelta(seconds=settings.COHORTSYNC_DISPATCH_LEASE_SECONDS)


def mark_dispatched(*, due: QuerySet, until: datetime, returning: str) -> list[tuple]:
    """Set `dispatched_until` on the rows `due` selects (ordered, sliced) in one UPDATE and
    return their `returning` columns. On PostgreSQL the rows are locked with SKIP LOCKED, so
    two dispatchers split the work instead of waiting or enqueuing twice."""
    with transaction.atomic():
        due_sql, due_params = due.select_for_update(skip_locked=True).values("pk").query.sql_with_params()
        with db.cursor() as cursor:
            cursor.execute(
                f"UPDATE {due.model._meta.db_table} SET dispatched_until = %s WHERE id IN ({due_sql}) "
                f"RETURNING {returning}",
                [db.ops.adapt_datetimefield_value(until), *due_params],
            )
            return cursor.fetchall()


def enqueue(task, calls: Iterable[tuple[tuple, dict]], *, expires: datetime | None,
            on_failure: Callable[[], object]) -> None:
    """Send `task` once per (args, kwargs) through one producer, pipelined (a round trip per
    task was most of a 10,000-sync tick). If the broker fails, `on_failure` undoes the marks
    and BrokerUnavailable is raised."""
    try:
        with task.app.producer_or_acquire() as producer, producer.batch():
            for args, kwargs in calls:
                task.apply_async(args, kwargs, expires=expires, producer=producer)
    except Exception as exc:
        on_failure()
        raise BrokerUnavailable(f"the task queue is unavailable ({type(exc).__name__}); try again shortly") from exc


def queued_runs_dispatch(*, runs: QuerySet, task, subject: str, now: datetime) -> list[int]:
    """Queued runs (run now, API, pages, admin, scheduled messages) whose task has not started by
    its expiry: the broker lost it or the worker dropped it unrun. Enqueue them again.

    `subject` names the run's column that is the task's first argument (sync_id, message_id).
    """
    until = now + dispatch_lease()
    stale = runs.filter(status="queued").filter(
        Q(dispatched_until__isnull=True) | Q(dispatched_until__lt=now)
    ).order_by("pk")[: settings.COHORTSYNC_DISPATCH_BATCH]
    rows = sorted(mark_dispatched(due=stale, until=until, returning=f"id, {subject}, trigger"))
    run_ids = [row[0] for row in rows]
    if rows:
        transaction.on_commit(lambda: enqueue(
            task, [((subject_id,), {"trigger": trigger, "run_id": run_id}) for run_id, subject_id, trigger in rows],
            expires=until,  # still queued: the next tick tries again
            on_failure=lambda: runs.model.objects.filter(pk__in=run_ids).update(dispatched_until=None),
        ), robust=True)
    return run_ids


def run_enqueue_requested(*, task, run, args: tuple, kwargs: dict,
                          on_failure: Callable[[], object] | None = None) -> None:
    """Enqueue the task of a run just committed as `queued`. The broker refusing it deletes
    the row (nothing is left behind; `on_failure` instead for a row that existed before, e.g. a
    stopped run queued for resumption) and raises BrokerUnavailable; a task lost later is the
    dispatcher's to re-enqueue (`dispatched_until`)."""
    enqueue(task, [(args, kwargs)], expires=run.dispatched_until,
            on_failure=on_failure or (
                lambda: type(run).objects.filter(pk=run.pk, status=type(run).Status.QUEUED).delete()))
