"""Messages and alerts through a real broker and an embedded worker: beat's entries, the
dispatcher → run task → receiver, and a paused sync → alert evaluation → firing → webhook."""

from datetime import timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from alerts import tasks as alert_tasks
from alerts.models import Alert, AlertFiring
from alerts.services import alert_create
from campaigns import tasks
from campaigns.models import Message, MessageRun
from config import celery_app
from deliveries import services as sync_services
from deliveries.models import SyncRun
from tests.deliveries.test_tasks import WAIT_SECONDS, wait_for, worker_broker  # noqa: F401 (a fixture)
from tests.factories import ConnectionFactory
from tests.support.receiver import LoopbackReceiver, Reply


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "task", "minutes"), [
    ("Dispatch due messages", "campaigns.dispatch_due_messages", 1),
    ("Recompute cohorts watched by alerts", "alerts.recompute_watched_cohorts", 5),
])
def test_migrations_created_the_beat_entries_for_registered_tasks(name, task, minutes):
    entry = PeriodicTask.objects.select_related("interval").get(name=name)

    assert (entry.task, entry.enabled, entry.interval.every, entry.interval.period) == (task, True, minutes, "minutes")
    assert task in celery_app.tasks


@pytest.mark.parametrize("task", [tasks.run_message, tasks.dispatch_due_messages, alert_tasks.deliver_firing,
                                  alert_tasks.evaluate_sync], ids=lambda t: t.name)
def test_tasks_ack_late_and_are_redelivered_when_a_worker_dies(task):
    assert (task.acks_late, task.reject_on_worker_lost, task.ignore_result) == (True, True, True)


@pytest.mark.django_db(transaction=True)
def test_beat_dispatch_runs_a_due_message_through_the_worker(worker_broker, make_message, receiver):  # noqa: F811
    message = make_message([f"u{i:02d}" for i in range(60)])
    Message.objects.filter(pk=message.pk).update(next_run_at=timezone.now() - timedelta(seconds=1))

    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=WAIT_SECONDS):
        tasks.dispatch_due_messages.delay()
        run = wait_for(lambda: MessageRun.objects.filter(message=message, status=MessageRun.Status.SUCCEEDED).first(),
                       "the message run to finish")

    assert [len(request.form_users) for request in receiver.requests] == [50, 10]
    assert (run.trigger, run.sent_count) == ("schedule", 60)
    message.refresh_from_db()
    assert message.next_run_at > timezone.now()  # the ASAP fallback check comes back later


@pytest.mark.django_db(transaction=True)
def test_a_sync_paused_by_its_receiver_fires_its_alert_to_the_notification_webhook(
    worker_broker, make_sync, receiver  # noqa: F811
):
    sync = make_sync(members=["A"])
    with LoopbackReceiver() as notifications:
        webhook = ConnectionFactory(project=sync.cohort.project, url=notifications.url("/alerts"))
        alert = alert_create(project=sync.cohort.project, name="Sync paused", kind=Alert.Kind.SYNC_PAUSED,
                             operator=Alert.Operator.IS, threshold=0, sync=sync, webhooks=[webhook])
        receiver.reply(Reply(status=401, body={"error": {"message": "token expired"}}))

        with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=WAIT_SECONDS):
            sync_services.sync_request_run(sync=sync)
            wait_for(lambda: notifications.requests, "the alert webhook")
            firing = wait_for(lambda: AlertFiring.objects.filter(alert=alert, status="delivered").first(),
                              "the firing to be delivered")

        (request,) = notifications.requests
    run = SyncRun.objects.get(sync=sync)
    payload = request.json
    assert payload["event_type"] == "custom_alert_triggered"
    assert payload["condition"]["type"] == "sync_paused" and "token expired" in payload["condition"]["sentence"]
    assert payload["links"]["root_cause_analysis_url"].endswith(f"?run={run.pk}#run-{run.pk}")
    assert firing.sync_run_id == run.pk
