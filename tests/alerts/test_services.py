"""Alerts (alerts/services.py): validation, the crossing rule of each kind, delivery to the
notification webhooks through the sync sender, email, and what is never stored."""

import threading
from datetime import timedelta

import orjson
import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import connections
from django.utils import timezone

from alerts import services
from alerts.models import Alert, AlertFiring
from cohorts.models import CohortSize
from cohorts.services import cohort_compute, cohort_size_record
from deliveries.models import Sync, SyncRun
from deliveries.services import sync_resume
from outbound.models import DeliveryAttempt
from tests.conftest import run_now, set_members
from tests.factories import CohortFactory, ConnectionFactory, SyncFactory, SyncRunFactory, UserFactory
from tests.support.receiver import LoopbackReceiver, Reply

pytestmark = pytest.mark.django_db


def size_alert(cohort, *, operator=Alert.Operator.GREATER_THAN, threshold=1000, **fields) -> Alert:
    return services.alert_create(project=cohort.project, name="Size", kind=Alert.Kind.COHORT_SIZE,
                                 operator=operator, threshold=threshold, cohort=cohort, **fields)


def change_alert(cohort, *, operator, threshold=10, **fields) -> Alert:
    return services.alert_create(project=cohort.project, name="Change", kind=Alert.Kind.COHORT_SIZE_CHANGE,
                                 operator=operator, threshold=threshold, cohort=cohort, **fields)


def sync_alert(sync, kind, threshold=0, **fields) -> Alert:
    operator = Alert.Operator.IS if kind == Alert.Kind.SYNC_PAUSED else Alert.Operator.AT_LEAST
    return services.alert_create(project=sync.cohort.project, name=kind, kind=kind, operator=operator,
                                 threshold=threshold, sync=sync, **fields)


def sizes_fire(cohort, *sizes) -> list[int]:
    """Record each size and evaluate, as the signal's task does: how many firings each made."""
    fired = []
    for size in sizes:
        recorded = cohort_size_record(cohort=cohort, size=size)
        fired.append(len(services.alerts_evaluate_cohort(cohort_id=cohort.pk, cohort_size_id=recorded.pk)))
    return fired


# --- Create and edit ---------------------------------------------------------------------------


def test_an_alert_is_validated_by_its_model(cohort):
    with pytest.raises(ValidationError) as raised:
        size_alert(cohort, operator=Alert.Operator.INCREASES_BY)
    assert "operator" in raised.value.message_dict

    with pytest.raises(ValidationError) as raised:
        services.alert_create(project=cohort.project, name="x", kind=Alert.Kind.SYNC_FAILING,
                              operator=Alert.Operator.AT_LEAST, threshold=2.5, sync=SyncFactory(cohort=cohort))
    assert "threshold" in raised.value.message_dict
    assert not Alert.objects.exists()


def test_webhooks_must_be_connections_of_the_alerts_project(cohort):
    foreign = ConnectionFactory(name="Elsewhere")

    with pytest.raises(ValidationError) as raised:
        size_alert(cohort, webhooks=[foreign])
    assert "Elsewhere" in raised.value.message_dict["webhooks"][0]

    alert = size_alert(cohort, webhooks=[ConnectionFactory(project=cohort.project)])
    with pytest.raises(ValidationError) as raised:
        services.alert_update(alert=alert, webhooks=[foreign])
    assert "webhooks" in raised.value.message_dict
    assert list(alert.webhooks.values_list("project", flat=True)) == [cohort.project_id]


def test_changing_the_condition_re_arms_the_alert_and_renaming_does_not(cohort):
    alert = size_alert(cohort)
    assert sizes_fire(cohort, 1500) == [1]

    services.alert_update(alert=alert, name="Renamed")
    assert Alert.objects.get(pk=alert.pk).is_triggered is True
    assert sizes_fire(cohort, 1500) == [0]

    services.alert_update(alert=alert, threshold=1200)
    assert Alert.objects.get(pk=alert.pk).is_triggered is False
    assert sizes_fire(cohort, 1500) == [1]  # the new condition's first crossing


def test_alert_update_refuses_fields_it_does_not_manage(cohort):
    with pytest.raises(TypeError):
        services.alert_update(alert=size_alert(cohort), project=CohortFactory().project)


def test_creating_an_alert_evaluates_it_after_commit(cohort, eager_tasks, django_capture_on_commit_callbacks):
    cohort_size_record(cohort=cohort, size=1500)

    with django_capture_on_commit_callbacks(execute=True):
        alert = size_alert(cohort)

    assert alert.firings.count() == 1


# --- The crossing rule, kind by kind ------------------------------------------------------------


def test_a_size_alert_fires_once_per_crossing_and_re_arms_below_it(cohort):
    alert = size_alert(cohort, threshold=1000)

    assert sizes_fire(cohort, 900, 1000, 1200, 1300, 1300, 800, 1100) == [0, 0, 1, 0, 0, 0, 1]

    assert [f.current_value for f in alert.firings.order_by("fired_at", "id")] == [1200, 1100]
    alert.refresh_from_db()
    assert (alert.is_triggered, alert.last_value) == (True, 1100)
    assert alert.last_evaluated_at is not None


def test_a_below_alert_fires_when_the_size_drops_under_the_threshold(cohort):
    size_alert(cohort, operator=Alert.Operator.LESS_THAN, threshold=10)

    assert sizes_fire(cohort, 12, 9, 3, 10, 0) == [0, 1, 0, 0, 1]


@pytest.mark.parametrize("operator, sizes, fired", [
    # +20% fires; +20.8% still holds; 0% re-arms; +10.3% fires again.
    (Alert.Operator.INCREASES_BY, (1000, 1200, 1450, 1450, 1600), [0, 1, 0, 0, 1]),
    (Alert.Operator.DECREASES_BY, (1000, 800, 600, 590, 500, 1000), [0, 1, 0, 0, 1, 0]),
    # |−20%| fires; |+50%| still holds; +4.2% re-arms; exactly −10% fires.
    (Alert.Operator.CHANGES_BY, (1000, 800, 1200, 1250, 1125), [0, 1, 0, 0, 1]),
])
def test_a_change_alert_fires_once_per_crossing(cohort, operator, sizes, fired):
    change_alert(cohort, operator=operator, threshold=10)

    assert sizes_fire(cohort, *sizes) == fired


def test_a_change_is_not_evaluable_without_a_previous_non_zero_size(cohort):
    alert = change_alert(cohort, operator=Alert.Operator.CHANGES_BY, threshold=10)

    assert sizes_fire(cohort, 0, 50) == [0, 0]  # first size; then growth from zero has no percent

    alert.refresh_from_db()
    assert (alert.is_triggered, alert.last_value) == (False, None)
    assert alert.last_evaluated_at is not None
    assert sizes_fire(cohort, 100) == [1]  # +100%


def test_a_stale_size_leaves_the_evaluation_to_the_newer_one(cohort):
    size_alert(cohort, threshold=1000)
    older = cohort_size_record(cohort=cohort, size=1500)
    cohort_size_record(cohort=cohort, size=1600)

    assert services.alerts_evaluate_cohort(cohort_id=cohort.pk, cohort_size_id=older.pk) == []
    assert len(services.alerts_evaluate_cohort(cohort_id=cohort.pk)) == 1


def test_inactive_alerts_and_other_cohorts_do_not_fire(cohort):
    size_alert(cohort, is_active=False)
    size_alert(CohortFactory(project=cohort.project))

    assert sizes_fire(cohort, 5000) == [0]
    assert not AlertFiring.objects.exists()


def test_evaluating_without_active_alerts_costs_one_query(cohort, django_assert_num_queries):
    size_alert(cohort)
    other, other_sync, sync = CohortFactory(), SyncFactory(), SyncFactory()
    sync_alert(sync, Alert.Kind.SYNC_PAUSED)
    services.alert_update(alert=sync_alert(other_sync, Alert.Kind.SYNC_FAILING, threshold=1), is_active=False)

    with django_assert_num_queries(1):
        assert services.alerts_evaluate_cohort(cohort_id=other.pk, cohort_size_id=None) == []
    with django_assert_num_queries(1):
        assert services.alerts_evaluate_sync(sync_id=other_sync.pk) == []


def test_a_sync_failing_alert_counts_finished_runs_only_and_a_pause_breaks_the_streak():
    sync = SyncFactory()
    alert = sync_alert(sync, Alert.Kind.SYNC_FAILING, threshold=3)

    def run(status):
        finished = SyncRunFactory(sync=sync, status=status)
        return len(services.alerts_evaluate_sync(sync_id=sync.pk, run_id=finished.pk))

    statuses = [SyncRun.Status.FAILED, SyncRun.Status.FAILED, SyncRun.Status.PAUSED, SyncRun.Status.FAILED,
                SyncRun.Status.SKIPPED, SyncRun.Status.QUEUED, SyncRun.Status.FAILED, SyncRun.Status.FAILED,
                SyncRun.Status.FAILED, SyncRun.Status.SUCCEEDED, SyncRun.Status.FAILED]
    assert [run(status) for status in statuses] == [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]

    alert.refresh_from_db()
    assert (alert.is_triggered, alert.last_value) == (False, 1)
    (firing,) = alert.firings.all()
    assert firing.current_value == 3


def test_a_sync_paused_alert_holds_while_the_sync_is_paused():
    sync = SyncFactory()
    alert = sync_alert(sync, Alert.Kind.SYNC_PAUSED)

    def evaluate(state):
        Sync.objects.filter(pk=sync.pk).update(state=state)
        return len(services.alerts_evaluate_sync(sync_id=sync.pk))

    states = [Sync.State.ACTIVE, Sync.State.PAUSED, Sync.State.PAUSED, Sync.State.ACTIVE, Sync.State.PAUSED]
    assert [evaluate(state) for state in states] == [0, 1, 0, 0, 1]
    assert alert.firings.count() == 2


# --- Through real sync runs and the signals -----------------------------------------------------


def test_a_run_that_pauses_the_sync_fires_an_alert_that_arrives_at_the_notification_webhook(
    make_sync, receiver, notifications, make_webhook, eager_tasks, django_capture_on_commit_callbacks,
):
    sync = make_sync(members=["A", "B"])
    alert = sync_alert(sync, Alert.Kind.SYNC_PAUSED, webhooks=[make_webhook(sync.cohort.project)])
    receiver.respond_with(lambda request: Reply(status=400, body={"error": {"message": "unknown list"}}))

    with django_capture_on_commit_callbacks(execute=True):
        paused = run_now(sync)

    assert sync.state == Sync.State.PAUSED
    (request,) = notifications.requests
    assert request.path == "/alerts"
    payload = request.json
    assert payload["event_type"] == "custom_alert_triggered"
    assert payload["alert"]["id"] == alert.pk
    assert payload["condition"]["sentence"].endswith("is paused: unknown list.")
    assert payload["links"]["root_cause_analysis_url"].endswith(f"/syncs/{sync.pk}/?run={paused.pk}#run-{paused.pk}")
    assert payload["links"]["report_url"].endswith(f"/syncs/{sync.pk}/")
    (firing,) = alert.firings.all()
    assert (firing.status, firing.sync_run_id) == (AlertFiring.Status.DELIVERED, paused.pk)

    # Resumed and healthy: re-armed. Paused again: a second firing.
    receiver.respond_with(None)
    with django_capture_on_commit_callbacks(execute=True):
        sync_resume(sync=sync)
        assert run_now(sync).status == SyncRun.Status.SUCCEEDED
    assert Alert.objects.get(pk=alert.pk).is_triggered is False
    receiver.respond_with(lambda request: Reply(status=400))
    with django_capture_on_commit_callbacks(execute=True):
        run_now(sync)
    assert len(notifications.requests) == 2
    assert alert.firings.count() == 2


def test_n_failed_runs_in_a_row_fire_at_the_nth_and_not_after(
    make_sync, receiver, notifications, make_webhook, eager_tasks, django_capture_on_commit_callbacks,
):
    sync = make_sync(members=["A"])
    alert = sync_alert(sync, Alert.Kind.SYNC_FAILING, threshold=3, webhooks=[make_webhook(sync.cohort.project)])
    receiver.respond_with(lambda request: Reply(status=500))

    runs, fired = [], []
    for _ in range(4):
        with django_capture_on_commit_callbacks(execute=True):
            runs.append(run_now(sync))
        fired.append(len(notifications.requests))

    assert [run.status for run in runs] == [SyncRun.Status.FAILED] * 4
    assert len(receiver.requests) == 4 * 5  # each run tried its page five times
    assert fired == [0, 0, 1, 1]
    (firing,) = alert.firings.all()
    assert firing.sync_run_id == runs[2].pk
    payload = notifications.requests[0].json
    assert payload["condition"]["formatted_value"] == "3 failed runs"
    assert payload["links"]["root_cause_analysis_url"].endswith(f"/syncs/{sync.pk}/?run={runs[2].pk}#run-{runs[2].pk}")

    receiver.respond_with(None)
    with django_capture_on_commit_callbacks(execute=True):
        assert run_now(sync).status == SyncRun.Status.SUCCEEDED
    assert Alert.objects.get(pk=alert.pk).is_triggered is False


def test_computing_a_cohort_evaluates_its_alerts(
    cohort, notifications, make_webhook, eager_tasks, django_capture_on_commit_callbacks,
):
    size_alert(cohort, threshold=2, webhooks=[make_webhook(cohort.project)])
    set_members(cohort, ["a", "b", "c"])

    for _ in range(2):  # two computations, each committed: the first crosses, the second holds
        with django_capture_on_commit_callbacks(execute=True):
            cohort_compute(cohort=cohort)

    (request,) = notifications.requests
    assert request.json["condition"]["formatted_value"] == "3 members"
    first_size = CohortSize.objects.filter(cohort=cohort).last()
    assert AlertFiring.objects.get().cohort_size == first_size


def test_sizes_committed_together_are_evaluated_once_at_the_newest(
    cohort, eager_tasks, django_capture_on_commit_callbacks,
):
    size_alert(cohort, threshold=2)
    set_members(cohort, ["a", "b", "c"])

    with django_capture_on_commit_callbacks(execute=True):
        cohort_compute(cohort=cohort)
        cohort_compute(cohort=cohort)

    assert AlertFiring.objects.get().cohort_size == CohortSize.objects.filter(cohort=cohort).first()


def test_the_receivers_enqueue_after_commit_and_never_break_a_run(make_sync, monkeypatch,
                                                                   django_capture_on_commit_callbacks):
    from alerts import tasks

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(tasks.evaluate_cohort, "delay", broker_down)
    monkeypatch.setattr(tasks.evaluate_sync, "delay", broker_down)
    sync = make_sync(members=["A"])
    size_alert(sync.cohort, threshold=5)
    sync_alert(sync, Alert.Kind.SYNC_FAILING, threshold=2)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = run_now(sync)
    assert run.status == SyncRun.Status.SUCCEEDED
    assert {c.__qualname__.split(".")[0] for c in callbacks} >= {"evaluate_cohort_alerts", "evaluate_sync_alerts"}

    with django_capture_on_commit_callbacks(execute=True):
        run = run_now(sync)
    assert run.status == SyncRun.Status.SUCCEEDED


def test_without_alerts_a_sync_run_queues_no_evaluation(make_sync, django_capture_on_commit_callbacks):
    sync = make_sync(members=["A"])
    size_alert(CohortFactory(project=sync.cohort.project))  # another cohort's alert

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run_now(sync)

    assert not [c for c in callbacks if c.__qualname__.split(".")[0].startswith("evaluate_")]


# --- Delivery ----------------------------------------------------------------------------------


def fired(cohort, **fields) -> AlertFiring:
    size_alert(cohort, threshold=1, **fields)
    cohort_size_record(cohort=cohort, size=5)
    (firing,) = services.alerts_evaluate_cohort(cohort_id=cohort.pk)
    return firing


def test_a_webhook_answering_500_five_times_leaves_the_firing_failed_with_five_attempts(
    cohort, notifications, make_webhook,
):
    firing = fired(cohort, webhooks=[make_webhook(cohort.project, name="Ops alerts")])
    notifications.respond_with(lambda request: Reply(status=500))

    firing = services.alert_firing_deliver(firing_id=firing.pk)

    assert firing.status == AlertFiring.Status.FAILED
    assert "Ops alerts" in firing.error_message and "500" in firing.error_message
    attempts = list(DeliveryAttempt.objects.filter(alert_firing=firing).order_by("attempt_number"))
    assert [a.attempt_number for a in attempts] == [1, 2, 3, 4, 5]
    assert {(a.source, a.page_number, a.action, a.outcome, a.http_status) for a in attempts} == {
        (firing, 1, "alert_triggered", "transient", 500)}
    assert len({a.page_id for a in attempts}) == 1
    assert [r.headers["webhook-id"] for r in notifications.requests] == [str(attempts[0].page_id)] * 5


def test_a_4xx_is_recorded_once_and_pauses_nothing(cohort, notifications, make_webhook):
    firing = fired(cohort, webhooks=[make_webhook(cohort.project)])
    notifications.respond_with(lambda request: Reply(status=404))

    firing = services.alert_firing_deliver(firing_id=firing.pk)

    assert firing.status == AlertFiring.Status.FAILED
    (attempt,) = firing.attempts.all()
    assert (attempt.outcome, attempt.http_status) == ("pause", 404)
    alert = firing.alert
    alert.refresh_from_db()
    assert alert.is_active is True
    assert sizes_fire(cohort, 1, 5) == [0, 1]  # still watching: re-armed and fired again


def test_each_webhook_gets_the_payload_and_one_failure_fails_the_firing(cohort, notifications, make_webhook):
    with LoopbackReceiver() as down:
        down.respond_with(lambda request: Reply(status=503))
        firing = fired(cohort, webhooks=[make_webhook(cohort.project, name="Ops alerts"),
                                         make_webhook(cohort.project, name="Pager", url=down.url("/page"))])

        firing = services.alert_firing_deliver(firing_id=firing.pk)

        assert len(down.requests) == 5
    assert [r.json for r in notifications.requests] == [firing.payload]
    assert firing.status == AlertFiring.Status.FAILED
    assert "Pager" in firing.error_message and "Ops alerts" not in firing.error_message
    pages = dict(firing.attempts.values_list("page_number", "page_id").distinct())
    assert sorted(pages) == [1, 2] and len(set(pages.values())) == 2


def test_a_firing_delivered_to_every_webhook_is_delivered_once(cohort, notifications, make_webhook):
    firing = fired(cohort, webhooks=[make_webhook(cohort.project)])

    assert services.alert_firing_deliver(firing_id=firing.pk).status == AlertFiring.Status.DELIVERED
    assert services.alert_firing_deliver(firing_id=firing.pk).status == AlertFiring.Status.DELIVERED

    assert len(notifications.requests) == 1
    assert firing.attempts.count() == 1
    assert services.alert_firing_deliver(firing_id=10**9) is None


def test_a_firing_without_webhooks_is_marked_so(cohort):
    firing = services.alert_firing_deliver(firing_id=fired(cohort).pk)

    assert (firing.status, firing.error_message) == (AlertFiring.Status.NO_WEBHOOK, "")
    assert not firing.attempts.exists()


def test_a_template_connection_still_gets_the_json_payload(cohort, notifications, make_webhook):
    webhook = make_webhook(cohort.project, content_type="text/plain")
    firing = fired(cohort, webhooks=[webhook])

    services.alert_firing_deliver(firing_id=firing.pk)

    (request,) = notifications.requests
    assert request.headers["content-type"] == "application/json"
    assert request.json == firing.payload


# --- Email ---------------------------------------------------------------------------------------


def test_the_email_option_mails_the_creator_and_the_people_to_notify(cohort, creator, notifications, make_webhook):
    colleague = UserFactory(username="grace", email="grace@example.com")
    firing = fired(cohort, email=True, created_by=creator, notify_users=[colleague, UserFactory(email="")],
                   webhooks=[make_webhook(cohort.project)])

    firing = services.alert_firing_deliver(firing_id=firing.pk)

    assert firing.status == AlertFiring.Status.DELIVERED
    assert firing.emailed_to == ["ada@example.com", "grace@example.com"]
    assert sorted(message.to[0] for message in mail.outbox) == firing.emailed_to
    message = mail.outbox[0]
    assert message.subject == "Cohortsync alert: Size"
    assert firing.sentence in message.body
    for link in firing.payload["links"].values():
        assert link in message.body


def test_without_the_email_option_nobody_is_mailed(cohort, creator):
    firing = services.alert_firing_deliver(firing_id=fired(cohort, created_by=creator).pk)

    assert firing.emailed_to == []
    assert mail.outbox == []


class BrokenEmailBackend:
    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise OSError("SMTP server unreachable")


def test_a_mail_error_does_not_break_the_webhook_delivery(cohort, creator, notifications, make_webhook, settings):
    settings.EMAIL_BACKEND = f"{__name__}.BrokenEmailBackend"
    firing = fired(cohort, email=True, created_by=creator, webhooks=[make_webhook(cohort.project)])

    firing = services.alert_firing_deliver(firing_id=firing.pk)

    assert len(notifications.requests) == 1
    assert firing.status == AlertFiring.Status.DELIVERED
    assert firing.emailed_to == []
    assert "email" in firing.error_message and "OSError" in firing.error_message


# --- Secrets --------------------------------------------------------------------------------------


def test_no_secret_of_the_webhook_is_stored_in_the_payload_the_firing_or_its_attempts(
    cohort, notifications, make_webhook,
):
    webhook = make_webhook(cohort.project, name="Ops alerts", auth_username="alerts",
                           auth_password="hunter2-password", api_key="sk-live-api-key",
                           signing_secret="whsec_c2lnbmluZy1zZWNyZXQ=")
    notifications.reply(Reply(status=500))
    firing = fired(cohort, webhooks=[webhook])

    firing = services.alert_firing_deliver(firing_id=firing.pk)

    assert firing.status == AlertFiring.Status.DELIVERED
    (first, second) = notifications.requests
    assert second.headers["x-api-key"] == "sk-live-api-key"  # used on the wire...
    assert second.headers["authorization"].startswith("Basic ")
    stored = [orjson.dumps(firing.payload).decode(), firing.sentence, firing.error_message,
              orjson.dumps(firing.emailed_to).decode()]
    for attempt in firing.attempts.all():
        stored += [attempt.response_excerpt, attempt.error, str(attempt.page_id), attempt.action]
    for secret in ("hunter2-password", "sk-live-api-key", "whsec_c2lnbmluZy1zZWNyZXQ=", webhook.url,
                   f"127.0.0.1:{notifications.port}"):
        assert not any(secret in text for text in stored)  # ...never stored


# --- Races and the schedule ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_evaluations_fire_once(require_postgres, eager_tasks):
    cohort = CohortFactory()
    alert = size_alert(cohort, threshold=10)
    CohortSize.objects.create(cohort=cohort, size=50)
    start = threading.Barrier(4)
    results, errors = [], []

    def evaluate():
        try:
            start.wait()
            results.append(len(services.alerts_evaluate_cohort(cohort_id=cohort.pk)))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()  # this thread's connections only

    threads = [threading.Thread(target=evaluate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    assert errors == []
    assert sorted(results) == [0, 0, 0, 1]
    (firing,) = alert.firings.all()
    assert firing.status == AlertFiring.Status.NO_WEBHOOK  # delivered on commit, in the winning thread


def test_watched_cohorts_are_recomputed_when_their_newest_size_is_stale(settings):
    settings.COHORTSYNC_ALERT_RECOMPUTE_MINUTES = 30
    now = timezone.now()
    never, stale, fresh, inactive, unwatched, sync_only = (CohortFactory() for _ in range(6))
    for cohort in (never, stale, fresh):
        size_alert(cohort, threshold=0)
    services.alert_update(alert=size_alert(inactive), is_active=False)
    sync_alert(SyncFactory(cohort=sync_only), Alert.Kind.SYNC_PAUSED)
    CohortSize.objects.create(cohort=stale, size=1, computed_at=now - timedelta(minutes=31))
    CohortSize.objects.create(cohort=stale, size=1, computed_at=now - timedelta(minutes=45))
    CohortSize.objects.create(cohort=fresh, size=1, computed_at=now - timedelta(minutes=29))
    for cohort in (inactive, unwatched, sync_only):
        CohortSize.objects.create(cohort=cohort, size=1, computed_at=now - timedelta(days=1))
    set_members(stale, ["a", "b"])

    computed = services.alerts_recompute_watched_cohorts(now=now)

    assert computed == [never.pk, stale.pk]  # never computed first, then the stalest
    assert stale.sizes.first().size == 2
    assert never.sizes.count() == 1 and fresh.sizes.count() == 1
    assert inactive.sizes.count() == unwatched.sizes.count() == sync_only.sizes.count() == 1
