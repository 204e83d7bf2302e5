"""The run lifecycle every outbound feature shares: a queued run starts, or is skipped; the
receiver's verdict finishes it; an internal error fails it. What a run sends and what
success commits stay with its app."""

from collections.abc import Callable

from django.db import models, transaction
from django.utils import timezone

from .policy import Outcome, Verdict


def run_start(*, runs: models.Manager, run_id: int | None, **fields) -> models.Model:
    """The queued run `run_id` (if still queued) becomes running, else a new running run.

    `runs` is the subject's related manager (e.g. `sync.runs`): a new run belongs to the
    subject, and a run id of another subject is never taken over.
    """
    status = runs.model.Status
    if run_id is not None:
        if runs.filter(pk=run_id, status=status.QUEUED).update(
            **fields, status=status.RUNNING, started_at=timezone.now()
        ):
            return runs.get(pk=run_id)
    return runs.create(**fields, status=status.RUNNING)


def run_skip(*, model: type[models.Model], run_id: int | None, reason: str) -> None:
    """A queued run that will not happen (subject paused, gone or busy) says why."""
    if run_id is not None:
        model.objects.filter(pk=run_id, status=model.Status.QUEUED).update(
            status=model.Status.SKIPPED, finished_at=timezone.now(), error_message=reason
        )


def run_fail(*, model: type[models.Model], run_id: int, reason: str) -> None:
    """The run ended without a receiver's verdict (an internal error, a lost claim)."""
    model.objects.filter(pk=run_id).update(
        status=model.Status.FAILED, finished_at=timezone.now(), error_message=reason[:500]
    )


def run_claim_lost(*, run: models.Model) -> models.Model:
    """The run stopped because its lease expired (another run may hold its subject now)."""
    run_fail(model=type(run), run_id=run.pk, reason="stopped: the claim expired")
    run.refresh_from_db()
    return run


def run_finish(*, run: models.Model, verdict: Verdict, succeeded: Callable[[], None],
               paused: Callable[[], None], failed: Callable[[], None]) -> None:
    """Finish a run by the receiver's verdict: its status, end and error in one UPDATE, then
    the subject's bookkeeping for that outcome (what success commits, how a pause or a
    failure is recorded), passed in by the run's app.

    Success is one transaction with what it commits: `succeeded` may raise (e.g. ClaimLost)
    to undo the status too. A pause or failure keeps the receiver's HTTP status.
    """
    status = run.Status.SUCCEEDED if verdict.outcome is Outcome.SUCCESS else (
        run.Status.PAUSED if verdict.outcome is Outcome.PAUSE else run.Status.FAILED)
    now = timezone.now()
    runs = type(run).objects.filter(pk=run.pk)
    if verdict.outcome is Outcome.SUCCESS:
        with transaction.atomic():
            succeeded()
            now = timezone.now()  # the run's recorded duration includes what success commits
            runs.update(status=status, finished_at=now, error_message=verdict.message)
    else:
        runs.update(status=status, finished_at=now, error_message=verdict.message, http_status=verdict.code)
    run.status, run.finished_at, run.error_message = status, now, verdict.message
    if verdict.outcome is Outcome.PAUSE:
        paused()
    elif verdict.outcome is not Outcome.SUCCESS:
        failed()
