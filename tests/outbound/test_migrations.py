"""The attempt table's move to a generic source keeps every row and the source it had
(deliveries 0009, outbound 0001), and can be undone."""

import uuid

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE = [("deliveries", "0008_snapshot_generations"), ("campaigns", "0002_dispatch_schedule"),
          ("alerts", "0002_recompute_schedule")]
AFTER = [("outbound", "0001_initial")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def migrated_back(transactional_db):
    apps = migrate(BEFORE)
    yield apps
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def attempt_fields(n):
    return dict(page_number=n, page_id=uuid.uuid4(), action="members", attempt_number=1, outcome="success")


def test_each_attempt_keeps_its_source_through_the_move_and_back(migrated_back):
    apps = migrated_back
    project = apps.get_model("cohorts", "Project").objects.create(name="p")
    cohort = apps.get_model("cohorts", "Cohort").objects.create(project=project, name="c")
    connection_row = apps.get_model("integrations", "Connection").objects.create(project=project, name="w",
                                                                                 url="https://example.com/")
    sync = apps.get_model("deliveries", "Sync").objects.create(cohort=cohort, connection=connection_row)
    run = apps.get_model("deliveries", "SyncRun").objects.create(sync=sync)
    message = apps.get_model("campaigns", "Message").objects.create(cohort=cohort, connection=connection_row,
                                                                    name="m")
    message_run = apps.get_model("campaigns", "MessageRun").objects.create(message=message)
    alert = apps.get_model("alerts", "Alert").objects.create(project=project, name="a", kind="cohort_size",
                                                             operator="greater_than", threshold=1, cohort=cohort)
    firing = apps.get_model("alerts", "AlertFiring").objects.create(alert=alert, fired_at=timezone.now(),
                                                                    current_value=2, sentence="s", payload={})
    Attempt = apps.get_model("deliveries", "DeliveryAttempt")
    Attempt.objects.create(run=run, **attempt_fields(1))
    Attempt.objects.create(message_run=message_run, **attempt_fields(2))
    Attempt.objects.create(alert_firing=firing, **attempt_fields(3))

    apps = migrate(AFTER)
    moved = apps.get_model("outbound", "DeliveryAttempt").objects.order_by("page_number")
    kinds = [(a.source_kind.app_label, a.source_kind.model, a.source_id) for a in moved]
    assert kinds == [("deliveries", "syncrun", run.pk), ("campaigns", "messagerun", message_run.pk),
                     ("alerts", "alertfiring", firing.pk)]

    apps = migrate(BEFORE)
    back = apps.get_model("deliveries", "DeliveryAttempt").objects.order_by("page_number")
    assert [(a.run_id, a.message_run_id, a.alert_firing_id) for a in back] == [
        (run.pk, None, None), (None, message_run.pk, None), (None, None, firing.pk)]
