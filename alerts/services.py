"""Changes to alerts: create and edit them, evaluate them, fire once per crossing, deliver each firing.

A firing POSTs the `custom_alert_triggered` payload (docs/contract.md, docs/asyncapi.yaml) to the alert's notification
webhooks through the sync sender's one retry loop (outbound.sender), and optionally emails.
"""

import dataclasses
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import F, OuterRef, Q, Subquery
from django.urls import reverse
from django.utils import timezone

from cohorts.models import Cohort, CohortSize, Project
from cohorts.services import cohort_compute
from deliveries.models import Sync, SyncRun
from integrations.models import Connection
from outbound.ids import request_id
from outbound.links import absolute_url
from outbound.policy import Outcome
from outbound.records import AttemptRecords
from outbound.sender import Destination, open_session, post_with_retries

from .models import Alert, AlertFiring

logger = logging.getLogger(__name__)

EVENT_TYPE = "custom_alert_triggered"
# DeliveryAttempt.action holds 20 characters; the event type has 22.
ATTEMPT_ACTION = "alert_triggered"
COHORT_KINDS = (Alert.Kind.COHORT_SIZE, Alert.Kind.COHORT_SIZE_CHANGE)
SYNC_KINDS = (Alert.Kind.SYNC_PAUSED, Alert.Kind.SYNC_FAILING)
# Fields that define the condition: changing one re-arms the alert (the old crossing was another condition's).
CONDITION_FIELDS = ("kind", "operator", "threshold", "cohort", "sync", "is_active")
UPDATABLE_FIELDS = ("name", "email", *CONDITION_FIELDS)
# How far back a failure streak is counted, beyond the threshold itself (the value shown).
FAILURE_STREAK_SCAN = 100
# Finished runs: a queued, running or skipped run says nothing about the sync's health.
FINISHED_RUN_STATUSES = (SyncRun.Status.SUCCEEDED, SyncRun.Status.FAILED, SyncRun.Status.PAUSED)
SENTENCE_ERROR_CHARS = 300
# Names the `webhook-id` of each (firing, webhook): stable across retries and redelivered tasks.
FIRING_ID_NAMESPACE = uuid.UUID("5b0f3b8e-3c1e-4d8e-9a51-0c2f7d6a4e21")


# --- Create and edit ----------------------------------------------------------------------


def alert_create(
    *,
    project: Project,
    name: str,
    kind: str,
    operator: str,
    threshold: float,
    cohort: Cohort | None = None,
    sync: Sync | None = None,
    webhooks: Iterable[Connection] = (),
    email: bool = False,
    notify_users: Iterable = (),
    is_active: bool = True,
    created_by=None,
) -> Alert:
    """A new, armed alert; validated by Alert.clean() and the project's own webhooks.

    Evaluated once on commit, so a condition that already holds fires without waiting for
    the next computation or run.
    """
    webhooks = list(webhooks)
    alert_webhooks_check(project=project, webhooks=webhooks)
    alert = Alert(project=project, name=name, kind=kind, operator=operator, threshold=threshold,
                  cohort=cohort, sync=sync, email=email, is_active=is_active, created_by=created_by)
    alert.full_clean()
    with transaction.atomic():
        alert.save()
        alert.webhooks.set(webhooks)
        alert.notify_users.set(list(notify_users))
    _evaluate_on_commit(alert)
    return alert


def alert_update(*, alert: Alert, **fields) -> Alert:
    """Change an alert's fields (and `webhooks` / `notify_users`, replaced as a whole).

    Changing its condition (kind, operator, threshold, cohort, sync, is_active) re-arms it:
    the next evaluation where the new condition holds fires.
    """
    unknown = set(fields) - set(UPDATABLE_FIELDS) - {"webhooks", "notify_users"}
    if unknown:
        raise TypeError(f"alert_update() cannot change {', '.join(sorted(unknown))}")
    webhooks = fields.pop("webhooks", None)
    notify_users = fields.pop("notify_users", None)
    if webhooks is not None:
        webhooks = list(webhooks)
        alert_webhooks_check(project=alert.project, webhooks=webhooks)
    changed = [name for name, value in fields.items() if getattr(alert, name) != value]
    for name, value in fields.items():
        setattr(alert, name, value)
    alert.full_clean()
    rearm = any(name in CONDITION_FIELDS for name in changed)
    if rearm:
        alert.is_triggered = False
    with transaction.atomic():
        alert.save(update_fields=[*changed, *(["is_triggered"] if rearm else []), "updated_at"])
        if webhooks is not None:
            alert.webhooks.set(webhooks)
        if notify_users is not None:
            alert.notify_users.set(list(notify_users))
    if rearm:
        _evaluate_on_commit(alert)
    return alert


def alert_webhooks_check(*, project: Project, webhooks: list[Connection]) -> None:
    """Notification webhooks must be connections of the alert's project (ValidationError otherwise)."""
    foreign = [connection.name for connection in webhooks if connection.project_id != project.pk]
    if foreign:
        raise ValidationError({"webhooks": "Notification webhooks must be connections of the alert's project "
                                           f"(not {', '.join(f'“{name}”' for name in foreign)})."})


def _evaluate_on_commit(alert: Alert) -> None:
    from .tasks import evaluate_cohort, evaluate_sync  # tasks are thin wrappers over this module

    if not alert.is_active:
        return
    if alert.cohort_id:
        transaction.on_commit(lambda: evaluate_cohort.delay(alert.cohort_id), robust=True)
    elif alert.sync_id:
        transaction.on_commit(lambda: evaluate_sync.delay(alert.sync_id), robust=True)


# --- Evaluate -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Observation:
    """What one evaluation of one alert saw: whether its condition holds, the value, the root cause."""

    holds: bool
    value: float | None  # None: not evaluable (no size yet, or no previous size to compare with)
    current_value: str = ""
    formatted_value: str = ""
    sentence: str = ""
    sync_run_id: int | None = None
    cohort_size_id: int | None = None


def alerts_evaluate_cohort(*, cohort_id: int, cohort_size_id: int | None = None) -> list[AlertFiring]:
    """Evaluate the cohort's active size and size-change alerts against its newest sizes.

    Size alerts compare the newest size with the threshold (strictly greater / less than).
    Change alerts compare the percent change between the newest two sizes: `increases_by`
    holds when change ≥ threshold, `decreases_by` when −change ≥ threshold, `changes_by` when
    |change| ≥ threshold. With fewer than two sizes, or a previous size of 0, the change is
    not evaluable and the condition does not hold (the alert re-arms).
    `cohort_size_id` names the size that asked for this evaluation: when a newer size exists,
    that size's own evaluation covers this one, so this one does nothing.
    """
    alerts = list(_active_alerts().filter(cohort_id=cohort_id, kind__in=COHORT_KINDS))
    if not alerts:
        return []
    sizes = list(CohortSize.objects.filter(cohort_id=cohort_id).order_by("-computed_at", "-id")[:2])
    if cohort_size_id is not None and sizes and sizes[0].pk != cohort_size_id:
        return []
    return _record_evaluations(
        alerts,
        lambda alert: (_observe_size if alert.kind == Alert.Kind.COHORT_SIZE else _observe_size_change)(alert, sizes),
    )


def alerts_evaluate_sync(*, sync_id: int, run_id: int | None = None) -> list[AlertFiring]:
    """Evaluate the sync's active paused and failing alerts against its state and newest runs.

    `sync_paused` holds while the sync is paused. `sync_failing` holds while its newest N
    finished runs all failed (N = threshold; queued, running and skipped runs are ignored).
    A run that paused the sync counts as not failed: the pause has its own alert kind, and
    a paused sync runs no more until someone resumes it. So does the run that auto-paused it
    (outbound.autopause): it reads "Paused the sync", and `sync_paused` reports the reason.
    `run_id` is the run that finished;
    the root cause is read from the runs themselves (a late task sees the same picture).
    """
    alerts = list(_active_alerts().filter(sync_id=sync_id, kind__in=SYNC_KINDS))
    if not alerts:
        return []
    sync = Sync.objects.select_related("cohort", "connection").filter(pk=sync_id).first()
    if sync is None:
        return []
    return _record_evaluations(
        alerts, lambda alert: (_observe_paused if alert.kind == Alert.Kind.SYNC_PAUSED else _observe_failing)(alert, sync)
    )


def _record_evaluations(alerts: list[Alert], observe: Callable[[Alert], Observation]) -> list[AlertFiring]:
    """Record each alert's observation (one `now` for all); the firings that opened."""
    now = timezone.now()
    firings = []
    for alert in alerts:
        firing = _record_evaluation(alert=alert, observation=observe(alert), now=now)
        if firing is not None:
            firings.append(firing)
    return firings


def _active_alerts():
    return Alert.objects.filter(is_active=True).select_related(
        "project", "created_by", "cohort", "sync__cohort", "sync__connection"
    )


def _record_evaluation(*, alert: Alert, observation: Observation, now: datetime) -> AlertFiring | None:
    """The crossing rule: fire when the condition holds and did not at the last evaluation;
    re-arm when it does not hold. Every evaluation records its time and value."""
    evaluated = Alert.objects.filter(pk=alert.pk)
    recorded = dict(last_evaluated_at=now, last_value=observation.value)
    with transaction.atomic():
        if not observation.holds:
            evaluated.update(is_triggered=False, **recorded)
            return None
        # One conditional UPDATE: of two concurrent evaluations, only one turns the alert on.
        crossed = evaluated.filter(is_triggered=False, is_active=True).update(is_triggered=True, **recorded)
        if not crossed:
            evaluated.update(**recorded)
            return None
        return alert_fire(alert=alert, observation=observation, fired_at=now)


def _observe_size(alert: Alert, sizes: list[CohortSize]) -> Observation:
    if not sizes:
        return Observation(holds=False, value=None)
    latest = sizes[0]
    above = alert.operator == Alert.Operator.GREATER_THAN
    holds = latest.size > alert.threshold if above else latest.size < alert.threshold
    return Observation(
        holds=holds,
        value=float(latest.size),
        current_value=str(latest.size),
        formatted_value=_members(latest.size),
        sentence=(f"Cohort “{alert.cohort.name}” has {_members(latest.size)}, "
                  f"{'above' if above else 'below'} the threshold of {_number(alert.threshold)}."),
        cohort_size_id=latest.pk,
    )


def _observe_size_change(alert: Alert, sizes: list[CohortSize]) -> Observation:
    if len(sizes) < 2 or sizes[1].size == 0:
        return Observation(holds=False, value=None, cohort_size_id=sizes[0].pk if sizes else None)
    latest, previous = sizes
    change = (latest.size - previous.size) * 100 / previous.size
    if alert.operator == Alert.Operator.INCREASES_BY:
        holds, wanted = change >= alert.threshold, "an increase"
    elif alert.operator == Alert.Operator.DECREASES_BY:
        holds, wanted = -change >= alert.threshold, "a decrease"
    else:
        holds, wanted = abs(change) >= alert.threshold, "a change"
    moved = "grew" if change > 0 else "shrank" if change < 0 else "did not change"
    by = f" by {_number(abs(change))}%" if change else ""
    return Observation(
        holds=holds,
        value=change,
        current_value=_plain(change),
        formatted_value=f"{'+' if change > 0 else ''}{_number(change)}%",
        sentence=(f"Cohort “{alert.cohort.name}” {moved}{by} since its previous computation, "
                  f"from {_members(previous.size)} to {_members(latest.size)} "
                  f"(the alert fires on {wanted} of at least {_number(alert.threshold)}%)."),
        cohort_size_id=latest.pk,
    )


def _observe_paused(alert: Alert, sync: Sync) -> Observation:
    if sync.state != Sync.State.PAUSED:
        return Observation(holds=False, value=0.0)
    run_id = (SyncRun.objects.filter(sync_id=sync.pk, status=SyncRun.Status.PAUSED)
              .order_by("-started_at", "-id").values_list("pk", flat=True).first())
    reason = _excerpt(sync.last_error_message)
    return Observation(
        holds=True,
        value=1.0,
        current_value="paused",
        formatted_value="paused",
        sentence=_sentence(f"The sync of {_sync_name(sync)} is paused", reason),
        sync_run_id=run_id,
    )


def _observe_failing(alert: Alert, sync: Sync) -> Observation:
    needed = int(alert.threshold)
    rows = (SyncRun.objects.filter(sync_id=sync.pk, status__in=FINISHED_RUN_STATUSES)
            .order_by("-started_at", "-id").values_list("pk", "status", "error_message", "stops"))
    # A resumed run is one row whose earlier attempts are its `stops`: each counts as a run.
    runs = [attempt for pk, status, error, stops in rows[:max(needed, FAILURE_STREAK_SCAN)]
            for attempt in [(pk, status, error), *((pk, stop["status"], stop["error"]) for stop in reversed(stops or []))]]
    streak = next((i for i, (_, status, _) in enumerate(runs) if status != SyncRun.Status.FAILED), len(runs))
    holds = streak >= needed
    last_error = _excerpt(runs[0][2]) if streak else ""
    return Observation(
        holds=holds,
        value=float(streak),
        current_value=str(streak),
        formatted_value=_failed_runs(streak),
        sentence=(f"The sync of {_sync_name(sync)} failed {streak} run{'s' if streak != 1 else ''} in a row, "
                  f"the threshold being {needed}" + (f" (last error: {last_error})" if last_error else "") + "."),
        sync_run_id=runs[0][0] if streak else None,
    )


# --- Fire -----------------------------------------------------------------------------------


def alert_fire(*, alert: Alert, observation: Observation, fired_at: datetime | None = None) -> AlertFiring:
    """Record one firing with the payload it sends, and deliver it after commit.

    Does not check the crossing rule: evaluation calls it on a crossing only.
    """
    from .tasks import deliver_firing  # tasks are thin wrappers over this module

    fired_at = fired_at or timezone.now()
    firing = AlertFiring.objects.create(
        alert=alert,
        fired_at=fired_at,
        current_value=observation.value if observation.value is not None else 0.0,
        sentence=observation.sentence,
        payload=alert_payload(alert=alert, observation=observation, fired_at=fired_at),
        sync_run_id=observation.sync_run_id,
        cohort_size_id=observation.cohort_size_id,
    )
    transaction.on_commit(lambda: deliver_firing.delay(firing.pk), robust=True)
    return firing


def alert_payload(*, alert: Alert, observation: Observation, fired_at: datetime) -> dict:
    """The `custom_alert_triggered` body (docs/asyncapi.yaml, CustomAlertTriggeredPayload).

    Absolute URLs from COHORTSYNC_BASE_URL. Never holds a connection's URL or credentials.
    """
    creator = alert.created_by
    metadata = {"id": alert.pk, "name": alert.name}
    if creator is not None:
        metadata["creator"] = creator.get_full_name() or creator.get_username()
        if creator.email:  # `format: email`: an empty string would not validate
            metadata["creator_email"] = creator.email
    metadata.update(project_id=alert.project_id, project_name=alert.project.name, fired_at=fired_at.isoformat())
    links = alert_links(alert=alert, sync_run_id=observation.sync_run_id)
    if alert.watches_cohort:
        report = {"name": alert.cohort.name, "type": "cohort", "url": links["report_url"]}
    else:
        report = {"name": str(alert.sync), "type": "sync", "url": links["report_url"]}
    return {
        "event_type": EVENT_TYPE,
        "alert": metadata,
        "condition": {
            "type": alert.kind,
            "operator": alert.operator,
            "threshold": int(alert.threshold) if float(alert.threshold).is_integer() else alert.threshold,
            "current_value": observation.current_value,
            "formatted_value": observation.formatted_value,
            "sentence": observation.sentence,
        },
        "report": report,
        "links": links,
    }


def alert_links(*, alert: Alert, sync_run_id: int | None = None) -> dict[str, str]:
    """The report's page, the alert's edit page and the root cause (the run, or the size history)."""
    if alert.watches_cohort:
        report_url = absolute_url(reverse("cohorts:cohort_detail", kwargs={"cohort_id": alert.cohort_id}))
        root_cause_url = f"{report_url}#size-history"
    else:
        report_url = absolute_url(reverse("deliveries:sync_detail", kwargs={"sync_id": alert.sync_id}))
        # ?run= opens the history page that holds the run, however old it is.
        root_cause_url = f"{report_url}?run={sync_run_id}#run-{sync_run_id}" if sync_run_id else report_url
    edit_url = absolute_url(reverse("admin:alerts_alert_change", args=[alert.pk]))
    return {"report_url": report_url, "edit_alert_url": edit_url, "root_cause_analysis_url": root_cause_url}


# --- Deliver --------------------------------------------------------------------------------


def alert_firing_deliver(*, firing_id: int) -> AlertFiring | None:
    """POST the firing's payload to each of the alert's webhooks (5 tries each), then email.

    Delivered when every webhook answered with a success, failed otherwise, no_webhook when
    there is none. A 4xx is recorded, nothing pauses: alerts are notifications. A firing no
    longer pending (a redelivered task) is left as it is; None if it was deleted.
    """
    firing = AlertFiring.objects.select_related("alert__project", "alert__created_by").filter(pk=firing_id).first()
    if firing is None or firing.status != AlertFiring.Status.PENDING:
        return firing
    alert = firing.alert
    # Only the project's own connections, whatever the M2M holds.
    webhooks = list(alert.webhooks.filter(project_id=alert.project_id).order_by("pk"))
    body = orjson.dumps(firing.payload)
    problems = []
    if webhooks:
        with open_session() as session:
            for number, connection in enumerate(webhooks, start=1):
                outcome, message = _post_firing(session=session, firing=firing, connection=connection,
                                                number=number, body=body)
                if outcome is not Outcome.SUCCESS:
                    problems.append(f"webhook “{connection.name}” failed: {message or outcome}")
    if not webhooks:
        status = AlertFiring.Status.NO_WEBHOOK
    else:
        status = AlertFiring.Status.FAILED if problems else AlertFiring.Status.DELIVERED
    emailed_to = []
    if alert.email:
        emailed_to, email_problem = _email_firing(firing)
        if email_problem:
            problems.append(email_problem)
    AlertFiring.objects.filter(pk=firing.pk).update(status=status, error_message="; ".join(problems),
                                                    emailed_to=emailed_to)
    firing.refresh_from_db()
    return firing


def _post_firing(*, session, firing: AlertFiring, connection: Connection, number: int,
                 body: bytes) -> tuple[Outcome, str]:
    # The alert body is JSON whatever the connection's own format (a template's content type).
    destination = dataclasses.replace(Destination.from_connection(connection), content_type="application/json")
    page_id = request_id(FIRING_ID_NAMESPACE, f"{firing.pk}:{firing.fired_at.isoformat()}:{connection.pk}")
    records = AttemptRecords(firing)

    def record(attempt: int, result) -> None:
        # Written at once: a firing has a handful of tries, each visible as it happens.
        records.attempt(page_number=number, page_id=page_id, action=ATTEMPT_ACTION, attempt_number=attempt,
                        result=result)
        records.write_attempts()

    verdict = post_with_retries(session=session, destination=destination, body=body, page_id=page_id, record=record)
    return verdict.outcome, verdict.message


def alert_email_recipients(*, alert: Alert) -> list[str]:
    """The alert's creator and the people listed to notify, by email address."""
    emails = set(alert.notify_users.exclude(email="").values_list("email", flat=True))
    if alert.created_by is not None and alert.created_by.email:
        emails.add(alert.created_by.email)
    return sorted(emails)


def _email_firing(firing: AlertFiring) -> tuple[list[str], str]:
    """One message per recipient; returns who got it and what went wrong (never raises)."""
    alert = firing.alert
    links = firing.payload.get("links", {})
    subject = f"Cohortsync alert: {alert.name}"
    text = "\n".join([
        firing.sentence,
        "",
        f"Report: {links.get('report_url', '')}",
        f"What caused it: {links.get('root_cause_analysis_url', '')}",
        f"Edit the alert: {links.get('edit_alert_url', '')}",
        "",
        f"Fired at {firing.fired_at:%Y-%m-%d %H:%M} UTC in project “{alert.project.name}”.",
    ])
    sent, failed = [], []
    try:
        recipients = alert_email_recipients(alert=alert)
    except Exception as exc:  # the webhooks went out already; the outcome must still be recorded
        logger.warning("alert firing %s: email recipients failed: %s", firing.pk, type(exc).__name__)
        return [], f"email failed: {type(exc).__name__}"
    for recipient in recipients:
        try:
            EmailMessage(subject, text, settings.DEFAULT_FROM_EMAIL, [recipient]).send()
        except Exception as exc:  # a mail outage must not hide the webhook outcome
            logger.warning("alert firing %s: email to a recipient failed: %s", firing.pk, type(exc).__name__)
            failed.append(type(exc).__name__)
            continue
        sent.append(recipient)
    problem = f"email to {len(failed)} of {len(recipients)} recipients failed: {failed[0]}" if failed else ""
    return sent, problem


# --- Scheduled recomputation ------------------------------------------------------------------


def alerts_recompute_watched_cohorts(*, now: datetime | None = None) -> list[int]:
    """Recompute the cohorts that active size alerts watch when their newest size is older
    than COHORTSYNC_ALERT_RECOMPUTE_MINUTES (or missing), the stalest first; recording the
    size evaluates their alerts. Returns the ids of the cohorts computed."""
    now = now or timezone.now()
    stale_before = now - timedelta(minutes=getattr(settings, "COHORTSYNC_ALERT_RECOMPUTE_MINUTES", 30))
    watched = Alert.objects.filter(is_active=True, kind__in=COHORT_KINDS).values("cohort_id")
    # The newest size per cohort through its index (cohort_size_recent), not an aggregate of the history.
    newest = CohortSize.objects.filter(cohort=OuterRef("pk")).order_by("-computed_at").values("computed_at")[:1]
    cohorts = (
        Cohort.objects.filter(pk__in=watched)
        .annotate(last_computed_at=Subquery(newest))
        .filter(Q(last_computed_at__isnull=True) | Q(last_computed_at__lt=stale_before))
        .order_by(F("last_computed_at").asc(nulls_first=True), "pk")
    )
    computed = []
    for cohort in cohorts:
        try:
            cohort_compute(cohort=cohort)
        except SoftTimeLimitExceeded:
            raise
        except Exception:  # one broken cohort (a rule that no longer compiles) must not starve the others
            logger.exception("cohort %s: recomputing for its alerts failed", cohort.pk)
            continue
        computed.append(cohort.pk)
    return computed


# --- Formatting -----------------------------------------------------------------------------


def _number(value: float) -> str:
    """1,234 or 12.5: thousands separated, at most one decimal, no trailing .0."""
    text = f"{value:,.1f}"
    return text[:-2] if text.endswith(".0") else text


def _plain(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}".rstrip("0").rstrip(".")


def _members(size: int) -> str:
    return f"{size:,} member{'' if size == 1 else 's'}"


def _failed_runs(count: int) -> str:
    return f"{count} failed run{'' if count == 1 else 's'}"


def _sync_name(sync: Sync) -> str:
    return f"“{sync.cohort.name}” to “{sync.connection.name}”"


def _sentence(statement: str, reason: str) -> str:
    """“<statement>: <reason>.”, or “<statement>.” without a reason."""
    if not reason:
        return f"{statement}."
    return f"{statement}: {reason}" + ("" if reason[-1] in ".!?…" else ".")


def _excerpt(message: str) -> str:
    message = " ".join((message or "").split())
    return message if len(message) <= SENTENCE_ERROR_CHARS else message[: SENTENCE_ERROR_CHARS - 1] + "…"
