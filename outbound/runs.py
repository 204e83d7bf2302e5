"""The run lifecycle every outbound feature shares: a queued run starts, or is skipped; an
internal error fails it. What a run sends and what success commits stay with its app."""

from django.db import models
from django.utils import timezone


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
