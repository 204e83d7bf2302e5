"""An auto-paused sync in alerts: `sync_paused` fires with the auto-pause reason, and the run that paused
it breaks the `sync_failing` streak, as a receiver's refusal does (alerts.services)."""

import pytest

from alerts.models import Alert
from deliveries.models import SyncRun
from tests.alerts.test_services import sync_alert
from tests.conftest import run_now
from tests.support.receiver import Reply

pytestmark = pytest.mark.django_db


def test_an_auto_paused_sync_is_reported_paused_not_failing(
    make_sync, receiver, notifications, make_webhook, eager_tasks, django_capture_on_commit_callbacks, settings,
):
    settings.COHORTSYNC_AUTO_PAUSE_FAILED_RUNS = 3
    sync = make_sync(members=["A"])
    webhook = make_webhook(sync.cohort.project)
    failing = sync_alert(sync, Alert.Kind.SYNC_FAILING, threshold=2, webhooks=[webhook])
    paused = sync_alert(sync, Alert.Kind.SYNC_PAUSED, webhooks=[webhook])
    receiver.respond_with(lambda request: Reply(status=503))

    runs = []
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            runs.append(run_now(sync))

    assert runs[-1].status == SyncRun.Status.PAUSED
    assert len(notifications.requests) == 2  # failing at run 2, then paused at run 3
    (paused_firing,) = paused.firings.all()
    assert paused_firing.sync_run_id == runs[2].pk
    assert "Paused automatically: 3 runs failed in a row" in notifications.requests[1].json["condition"]["sentence"]
    failing.refresh_from_db()
    assert failing.is_triggered is False  # re-armed: the pausing run ends the streak
