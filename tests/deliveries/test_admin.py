"""The operators' sync, run, attempt and notification screens (deliveries/admin.py), and that
their lists stay fast on 100,000 runs and attempts."""

import re

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import connection as db
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from deliveries import services
from deliveries.models import Notification, Sync, SyncRun
from outbound.models import DeliveryAttempt
from tests.factories import ConnectionFactory, DeliveryAttemptFactory, SyncFactory, SyncRunFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def test_sync_list_puts_paused_then_failing_first_and_names_the_state(admin_client):
    healthy = SyncFactory()
    paused = SyncFactory(state=Sync.State.PAUSED, last_error_message="Invalid API key", last_error_status=401)
    failing = SyncFactory(last_error_message="502 Bad Gateway", last_error_status=502)

    response = admin_client.get("/admin/deliveries/sync/")

    assert list(response.context["cl"].result_list) == [paused, failing, healthy]
    html = response.content.decode()
    assert ">paused</strong>" in html and ">failing</strong>" in html and ">active</strong>" in html
    assert "HTTP 401: Invalid API key" in html
    assert f"/admin/deliveries/syncrun/?sync__id__exact={paused.pk}" in html


@pytest.mark.parametrize("value, expected", [("paused", ["paused"]), ("failing", ["failing"]),
                                             ("any", ["paused", "failing"])])
def test_the_attention_filter_finds_paused_and_failing_syncs(admin_client, value, expected):
    syncs = {
        "paused": SyncFactory(state=Sync.State.PAUSED, last_error_message="nope"),
        "failing": SyncFactory(last_error_message="502 Bad Gateway"),
        "healthy": SyncFactory(),
    }

    response = admin_client.get(f"/admin/deliveries/sync/?attention={value}")

    assert list(response.context["cl"].result_list) == [syncs[name] for name in expected]


def test_run_now_action_skips_paused_syncs(admin_client):
    active, paused = SyncFactory(), SyncFactory(state=Sync.State.PAUSED)

    admin_client.post("/admin/deliveries/sync/", {"action": "run_now", "_selected_action": [active.pk, paused.pk]})

    assert list(SyncRun.objects.values_list("sync_id", flat=True)) == [active.pk]


def test_run_list_filters_by_sync_and_status(admin_client):
    sync = SyncFactory()
    failed = SyncRunFactory(sync=sync, status=SyncRun.Status.FAILED, error_message="503", http_status=503)
    SyncRunFactory(sync=sync)
    SyncRunFactory()

    by_sync = admin_client.get(f"/admin/deliveries/syncrun/?sync__id__exact={sync.pk}")
    by_status = admin_client.get("/admin/deliveries/syncrun/?status__exact=failed")

    assert by_sync.status_code == 200 and len(by_sync.context["cl"].result_list) == 2
    assert list(by_status.context["cl"].result_list) == [failed]


def test_attempt_list_shows_only_problems_when_asked(admin_client):
    run = SyncRunFactory()
    DeliveryAttemptFactory(source=run)
    transient = DeliveryAttemptFactory(source=run, attempt_number=2, outcome="transient", http_status=503,
                                       error="503 Service Unavailable")

    response = admin_client.get("/admin/outbound/deliveryattempt/?outcome=problems")

    assert list(response.context["cl"].result_list) == [transient]
    assert "503 Service Unavailable" in response.content.decode()


def test_notification_list_says_to_whom_which_sync_why_and_when(admin_client, django_assert_max_num_queries):
    sync = SyncFactory(cohort__name="Churn risk", connection__name="CRM webhook")
    for n in range(5):
        Notification.objects.create(sync=sync, recipient=f"ops{n}@example.com", reason="sync_paused",
                                    subject="Cohortsync paused a sync")

    with django_assert_max_num_queries(8):
        response = admin_client.get("/admin/deliveries/notification/")

    html = response.content.decode()
    assert response.status_code == 200
    for text in ("ops4@example.com", "Churn risk → CRM webhook", "sync_paused", "Cohortsync paused a sync"):
        assert text in html
    assert "Sent at" in html


# --- 100,000 runs and attempts ---------------------------------------------------------------

ROWS = 100_000
LIST_PAGES = [
    "/admin/deliveries/syncrun/",
    "/admin/deliveries/syncrun/?status__exact=paused",
    "/admin/deliveries/syncrun/?kind__exact=diff",
    "/admin/outbound/deliveryattempt/",
    "/admin/outbound/deliveryattempt/?outcome=problems",
    "/admin/deliveries/sync/",
    "/admin/deliveries/notification/",
]


@pytest.fixture
def many_runs_and_attempts():
    """ROWS runs (one in 997 paused) with one attempt each (one in 499 transient), made in SQL."""
    sync = SyncFactory()
    postgres = db.vendor == "postgresql"
    uuid_sql = "md5(n.i::text)::uuid" if postgres else "lower(hex(randomblob(16)))"
    now = timezone.now()
    with db.cursor() as cursor:
        cursor.execute(
            f"""WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %s)
            INSERT INTO deliveries_syncrun (sync_id, session_id, kind, reason, trigger, status, started_at,
                finished_at, total_pages, pages_delivered, members_count, adds_count, removes_count, error_message)
            SELECT %s, {uuid_sql}, 'diff', '', 'schedule',
                CASE WHEN n.i %% 997 = 0 THEN 'paused' ELSE 'succeeded' END, %s, %s, 1, 1, 0, n.i %% 50, 0, ''
            FROM n""",
            [ROWS, sync.pk, now, now],
        )
        cursor.execute(
            f"""INSERT INTO outbound_deliveryattempt (source_kind_id, source_id, page_number, page_id, action,
                attempt_number, outcome, http_status, latency_ms, response_excerpt, error, created_at)
            SELECT %s, r.id, 1, {uuid_sql.replace("n.i", "r.id")}, 'add_members', 1,
                CASE WHEN r.id %% 499 = 0 THEN 'transient' ELSE 'success' END, 200, 10, '', '', %s
            FROM deliveries_syncrun r""",
            [ContentType.objects.get_for_model(SyncRun).pk, now],
        )
        if postgres:  # as autovacuum would have by now: the planner needs the tables' statistics
            cursor.execute("ANALYZE deliveries_syncrun, outbound_deliveryattempt")
    assert SyncRun.objects.count() == ROWS and DeliveryAttempt.objects.count() == ROWS
    return sync


def test_list_pages_stay_fast_and_never_count_the_whole_table(admin_client, many_runs_and_attempts):
    for url in LIST_PAGES:
        admin_client.get(url)  # warm caches (content types, sessions)
        with CaptureQueriesContext(db) as queries:
            response = admin_client.get(url)

        assert response.status_code == 200, url
        assert len(queries) <= 12, f"{url}: {len(queries)} queries"
        for query in queries.captured_queries:
            sql = query["sql"].upper()
            if "COUNT(" in sql and ("SYNCRUN" in sql or "DELIVERYATTEMPT" in sql):
                # every count over the big tables is of a LIMITed subquery (CappedCountPaginator)
                assert re.search(r"LIMIT \d+", sql), f"{url}: unbounded count {sql[:200]}"


def test_celery_beats_periodic_tasks_are_editable_in_the_admin(admin_client):
    entry = PeriodicTask.objects.get(name="Dispatch due syncs")

    assert admin_client.get("/admin/django_celery_beat/periodictask/").status_code == 200
    assert admin_client.get(f"/admin/django_celery_beat/periodictask/{entry.pk}/change/").status_code == 200


def test_the_old_attempts_address_leads_to_the_core_attempts_list(admin_client):
    response = admin_client.get("/admin/deliveries/deliveryattempt/?outcome=problems")

    assert response.status_code == 302
    assert response["Location"] == "/admin/outbound/deliveryattempt/?outcome=problems"


# --- Add and change go through the services; internal fields are read-only ---------------------


def sync_form(sync_or_cohort, connection, **fields) -> dict:
    data = {"cohort": sync_or_cohort.pk, "connection": connection.pk, "mode": "dynamic", "interval_minutes": 30,
            "properties": '["plan"]'}
    data.update(fields)
    return data


def test_adding_a_sync_goes_through_sync_create_and_it_is_due_at_once(admin_client):
    other = SyncFactory()  # gives a cohort and a connection of one project
    cohort, connection = other.cohort, other.connection
    root = admin_client.session["_auth_user_id"]

    # Internal fields posted by hand are not form fields: they are ignored.
    response = admin_client.post("/admin/deliveries/sync/add/", sync_form(
        cohort, connection, state="paused", next_run_at_0="2001-01-01", snapshot_generation=99, force_full="on"))

    assert response.status_code == 302, response.context["adminform"].errors
    sync = Sync.objects.exclude(pk=other.pk).get()
    assert sync.state == Sync.State.ACTIVE and sync.snapshot_generation == 0 and not sync.force_full
    assert sync.next_run_at is not None and sync.next_run_at <= timezone.now()
    assert sync.properties == ["plan"]
    assert str(sync.created_by_id) == root
    assert list(sync.notify_users.values_list("pk", flat=True)) == [int(root)]


def test_the_change_page_shows_internal_fields_read_only(admin_client):
    sync = SyncFactory()

    response = admin_client.get(f"/admin/deliveries/sync/{sync.pk}/change/")

    form = response.context["adminform"].form
    assert set(form.fields) == {"connection", "interval_minutes", "properties", "notify_users", "auto_pause_failed_runs",
                                "auto_pause_hours"}
    html = response.content.decode()
    for label in ("Snapshot generation", "Next run at", "Claimed until", "Force full"):
        assert label in html


def test_changing_the_connection_goes_through_sync_update(admin_client):
    sync = SyncFactory()
    Sync.objects.filter(pk=sync.pk).update(snapshot_generation=7)
    moved = ConnectionFactory(project=sync.cohort.project)

    response = admin_client.post(f"/admin/deliveries/sync/{sync.pk}/change/",
                                 sync_form(sync.cohort, moved, properties="[]"))

    assert response.status_code == 302
    sync.refresh_from_db()
    assert (sync.connection_id, sync.force_full, sync.snapshot_generation) == (moved.pk, True, 7)


def test_a_connection_of_another_project_is_a_form_error(admin_client):
    sync = SyncFactory()

    response = admin_client.post("/admin/deliveries/sync/add/", sync_form(sync.cohort, ConnectionFactory()))

    assert response.status_code == 200
    assert "The connection belongs to another project than the cohort." in response.content.decode()
    assert Sync.objects.count() == 1


def test_actions_warn_about_the_syncs_whose_state_refuses_and_say_why(admin_client):
    active = SyncFactory()
    finished = SyncFactory(mode=Sync.Mode.ONE_TIME, state=Sync.State.FINISHED, cohort__name="Old export")

    response = admin_client.post("/admin/deliveries/sync/", {"action": "run_now",
                                                             "_selected_action": [active.pk, finished.pk]},
                                 follow=True)

    shown = [(m.level_tag, m.message) for m in response.context["messages"]]
    assert ("info", "Queued 1 run(s).") in shown
    ((level, text),) = [m for m in shown if m[0] == "warning"]
    assert text.startswith("1 sync(s) not run: “Old export → ")
    assert text.endswith("The sync is finished; a one-time export runs once.")

    response = admin_client.post("/admin/deliveries/sync/", {"action": "full_refresh",
                                                             "_selected_action": [finished.pk]}, follow=True)
    assert any("not refreshed" in m.message for m in response.context["messages"])


def test_a_refusal_the_service_raises_on_save_is_a_form_error(admin_client, monkeypatch):
    other = SyncFactory()

    def refuse(**fields):
        # What the form did not check: a field it shows, and one it does not.
        raise ValidationError({"interval_minutes": "Refused by the service.", "next_run_at": "Not now."})

    monkeypatch.setattr(services, "sync_create", refuse)
    response = admin_client.post("/admin/deliveries/sync/add/", sync_form(other.cohort, other.connection,
                                                                           interval_minutes=45))

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.errors == {"interval_minutes": ["Refused by the service."], "__all__": ["Not now."]}
    assert form["interval_minutes"].value() == "45"  # what was typed stays
    assert Sync.objects.count() == 1
