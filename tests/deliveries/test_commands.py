"""The `demo` and `runsync` management commands, end to end against the loopback receiver."""

import re
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.core.management import CommandError, call_command
from django.test import RequestFactory
from django.utils import timezone

from cohorts.models import Cohort, CohortMember, Project
from deliveries.models import Sync, SyncRun
from integrations.models import Connection
from tests.support.receiver import Reply

pytestmark = pytest.mark.django_db


def call(name: str, *args) -> str:
    out, err = StringIO(), StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue()


def demo_ids(output: str) -> dict[str, int]:
    found = re.findall(r"^(project|cohort|connection|sync) id:\s+(\d+)", output, re.M)
    return {name: int(value) for name, value in found}


def cohort_size() -> int:
    return CohortMember.objects.filter(cohort__name="Demo cohort").count()


def member_ids(request) -> list[str]:
    return sorted(m["mixpanel_distinct_id"] for m in request.members)


@pytest.fixture
def demo_sync(receiver) -> Sync:
    """The demo, pointed at the loopback receiver, as the `demo` command leaves it."""
    call("demo", "--url", receiver.url())
    return Sync.objects.select_related("cohort", "connection").get()


# --- demo --------------------------------------------------------------------------------------


def test_demo_creates_everything_and_prints_ids_and_a_working_admin_password(receiver):
    output = call("demo", "--url", receiver.url())

    project = Project.objects.get(name="Demo project")
    cohort = Cohort.objects.get(project=project, name="Demo cohort")
    connection = Connection.objects.get(project=project, name="Demo receiver")
    sync = Sync.objects.get(cohort=cohort, connection=connection)
    assert demo_ids(output) == {
        "project": project.pk, "cohort": cohort.pk, "connection": connection.pk, "sync": sync.pk,
    }
    assert f"cohort id:     {cohort.pk} (25 members)" in output
    assert f"connection id: {connection.pk} → {receiver.url()}" in output
    assert f"sync id:       {sync.pk} (Dynamic (on an interval), every 30 min, active)" in output
    assert cohort_size() == 25
    assert connection.url == receiver.url()
    assert sync.state == Sync.State.ACTIVE and sync.next_run_at <= timezone.now()
    (password,) = re.findall(r"^admin login:\s+admin / (\S+)", output, re.M)
    admin = authenticate(RequestFactory().post("/login/"), username="admin", password=password)
    assert admin is not None and admin.is_superuser
    assert project.members.filter(pk=admin.pk).exists()
    assert list(sync.notify_users.all()) == [admin]


def test_demo_rerun_is_idempotent_and_does_not_print_the_password_again(receiver):
    first = call("demo", "--url", receiver.url())

    second = call("demo", "--url", receiver.url())

    assert demo_ids(second) == demo_ids(first)
    assert ("admin login:   admin (exists; password unchanged; to reset it: "
            ".venv/bin/python manage.py changepassword admin)") in second
    assert not re.search(r"admin login:\s+admin /", second)
    assert cohort_size() == 25
    assert (Project.objects.count(), Cohort.objects.count(), Connection.objects.count(), Sync.objects.count()) == (
        1, 1, 1, 1,
    )
    assert get_user_model().objects.filter(username="admin").count() == 1


def test_demo_members_resizes_the_cohort_both_ways(demo_sync, receiver):
    output = call("demo", "--url", receiver.url(), "--members", "40")

    assert f"cohort id:     {demo_sync.cohort_id} (40 members)" in output
    assert cohort_size() == 40

    call("demo", "--url", receiver.url(), "--members", "10")

    assert cohort_size() == 10
    assert Sync.objects.get().pk == demo_sync.pk


def test_demo_churn_swaps_members_and_keeps_the_size(demo_sync, receiver):
    call("demo", "--url", receiver.url(), "--members", "40")
    before = set(CohortMember.objects.values_list("profile__distinct_id", flat=True))

    output = call("demo", "--url", receiver.url(), "--churn", "10")

    after = set(CohortMember.objects.values_list("profile__distinct_id", flat=True))
    assert "Churn: swapped 10 % of 40 members (4, rounded to 4): removed 4, added 4 new ones." in output
    assert len(after) == 40
    assert len(before ^ after) == 8


def test_demo_new_url_updates_the_same_connection(demo_sync, receiver):
    new_url = receiver.url("/other-hook")

    output = call("demo", "--url", new_url)

    assert Connection.objects.get().url == new_url
    assert demo_ids(output)["sync"] == demo_sync.pk


def test_demo_refuses_a_private_url_unless_allowed(settings):
    settings.COHORTSYNC_ALLOW_PRIVATE_URLS = False

    with pytest.raises(CommandError) as caught:
        call("demo", "--url", "http://127.0.0.1:8000/receiver/demo/")

    assert str(caught.value) == (
        "Invalid URL 'http://127.0.0.1:8000/receiver/demo/': Destination address 127.0.0.1 is private, loopback "
        "or reserved. (loopback and private addresses need COHORTSYNC_ALLOW_PRIVATE_URLS=true)"
    )
    assert not Connection.objects.exists()
    assert not Sync.objects.exists()


def test_demo_refuses_an_invalid_url_without_the_private_hint():
    with pytest.raises(CommandError, match=r"^Invalid URL 'ftp://example.com/x': .*https:// or http://") as caught:
        call("demo", "--url", "ftp://example.com/x")

    assert "COHORTSYNC_ALLOW_PRIVATE_URLS" not in str(caught.value)


def test_a_refused_url_does_not_lose_the_admin_password(settings, receiver):
    settings.COHORTSYNC_ALLOW_PRIVATE_URLS = False
    with pytest.raises(CommandError):
        call("demo", "--url", "http://10.0.0.1/hook")
    settings.COHORTSYNC_ALLOW_PRIVATE_URLS = True

    output = call("demo", "--url", receiver.url())

    assert re.search(r"^admin login:\s+admin / \S+", output, re.M)


@pytest.mark.parametrize(("args", "message"), [
    (["--members", "-1"], "--members must be zero or more."),
    (["--churn", "101"], "--churn is a percentage between 0 and 100."),
    (["--churn", "-5"], "--churn is a percentage between 0 and 100."),
])
def test_demo_refuses_bad_numbers(args, message):
    with pytest.raises(CommandError) as caught:
        call("demo", *args)

    assert str(caught.value) == message
    assert not Project.objects.exists()


# --- runsync ------------------------------------------------------------------------------------


def test_runsync_sends_the_whole_cohort_first(demo_sync, receiver):
    output = call("runsync", str(demo_sync.pk))

    run = SyncRun.objects.get(sync=demo_sync)
    assert run.status == SyncRun.Status.SUCCEEDED
    assert f"Run {run.session_id} (full, first run): succeeded" in output
    assert re.search(r"^  page 1/1 members try 1: success HTTP 200 in \d+ ms$", output, re.M)
    assert "Sent 25 members in 1/1 pages." in output
    assert [r.action for r in receiver.requests] == ["members"]
    assert len(receiver.requests[0].members) == 25
    assert run.trigger == "cli"


def test_runsync_prints_every_page_of_a_large_cohort(demo_sync, receiver):
    call("demo", "--url", receiver.url(), "--members", "2100")

    output = call("runsync", str(demo_sync.pk))

    pages = re.findall(r"^  page (\d)/3 members try 1: success HTTP 200", output, re.M)
    assert pages == ["1", "2", "3"]
    assert "Sent 2100 members in 3/3 pages." in output
    assert [len(r.members) for r in receiver.requests] == [1000, 1000, 100]


def test_runsync_after_churn_sends_adds_then_removes(demo_sync, receiver):
    call("runsync", str(demo_sync.pk))
    before = set(CohortMember.objects.values_list("profile__distinct_id", flat=True))
    call("demo", "--url", receiver.url(), "--churn", "10")  # 25 members: 2.5, rounded to 3 out, 3 in
    after = set(CohortMember.objects.values_list("profile__distinct_id", flat=True))
    receiver.clear()

    output = call("runsync", str(demo_sync.pk))

    assert "(diff, diff): succeeded" in output
    assert re.search(r"^  page 1/2 add_members try 1: success HTTP 200", output, re.M)
    assert re.search(r"^  page 2/2 remove_members try 1: success HTTP 200", output, re.M)
    assert "Sent 3 adds and 3 removes in 2/2 pages." in output
    assert [r.action for r in receiver.requests] == ["add_members", "remove_members"]
    assert member_ids(receiver.requests[0]) == sorted(after - before)
    assert member_ids(receiver.requests[1]) == sorted(before - after)


def test_runsync_full_sends_members_again(demo_sync, receiver):
    call("runsync", str(demo_sync.pk))
    receiver.clear()

    output = call("runsync", str(demo_sync.pk), "--full")

    assert "(full, full refresh): succeeded" in output
    assert "Sent 25 members in 1/1 pages." in output
    assert [r.action for r in receiver.requests] == ["members"]


def test_runsync_of_an_unknown_sync_is_an_error(db):
    with pytest.raises(CommandError, match=r"^There is no sync 987654\.$"):
        call("runsync", "987654")


def test_runsync_of_a_paused_sync_asks_for_resume(demo_sync, receiver):
    Sync.objects.filter(pk=demo_sync.pk).update(state=Sync.State.PAUSED, last_error_message="Invalid API key")

    with pytest.raises(CommandError) as caught:
        call("runsync", str(demo_sync.pk))

    assert "paused (Invalid API key)" in str(caught.value)
    assert "--resume" in str(caught.value)
    assert receiver.requests == []
    assert not SyncRun.objects.exists()


def test_runsync_resume_resumes_then_runs(demo_sync, receiver):
    Sync.objects.filter(pk=demo_sync.pk).update(state=Sync.State.PAUSED, next_run_at=None)

    output = call("runsync", str(demo_sync.pk), "--resume")

    assert output.startswith(f"Resumed sync {demo_sync.pk}.\n")
    assert "Sent 25 members in 1/1 pages." in output
    demo_sync.refresh_from_db()
    assert demo_sync.state == Sync.State.ACTIVE
    assert demo_sync.snapshot_size == 25
    assert [r.action for r in receiver.requests] == ["members"]


def test_runsync_refused_by_the_receiver_pauses_the_sync(demo_sync, receiver, mailoutbox):
    receiver.reply(Reply(status=401, body={"action": "members", "status": "failure",
                                           "error": {"message": "Invalid API key", "code": 401}}))

    with pytest.raises(CommandError) as caught:
        call("runsync", str(demo_sync.pk))

    run = SyncRun.objects.get(sync=demo_sync)
    assert str(caught.value) == f"Run {run.session_id} paused: Invalid API key"
    demo_sync.refresh_from_db()
    assert demo_sync.state == Sync.State.PAUSED
    assert (demo_sync.last_error_status, demo_sync.last_error_message) == (401, "Invalid API key")
    assert demo_sync.snapshot_at is None
    assert len(receiver.requests) == 1  # permanent: no retries
    assert [m.to for m in mailoutbox] == [["admin@example.com"]]
    with pytest.raises(CommandError, match="--resume"):
        call("runsync", str(demo_sync.pk))


def test_runsync_of_a_finished_export_is_an_error(demo_sync):
    Sync.objects.filter(pk=demo_sync.pk).update(mode=Sync.Mode.ONE_TIME, state=Sync.State.FINISHED)

    with pytest.raises(CommandError, match=r"^Sync \d+: The sync is finished; a one-time export runs once\.$"):
        call("runsync", str(demo_sync.pk))


def claim_renewed(sync, *, seconds_ago: float, by: str = "worker-2 pid 4711") -> None:
    """The sync as a worker holding it left it: its last renewal `seconds_ago`."""
    lease = timedelta(seconds=settings.COHORTSYNC_CLAIM_LEASE_SECONDS)
    Sync.objects.filter(pk=sync.pk).update(claimed_until=timezone.now() - timedelta(seconds=seconds_ago) + lease,
                                           claim_token=uuid.uuid4(), claimed_by=by)


def test_runsync_of_a_claimed_sync_says_who_holds_it_and_until_when(demo_sync, receiver):
    claim_renewed(demo_sync, seconds_ago=3)  # a heartbeat a quarter lease (5 s) ago at most
    demo_sync.refresh_from_db()
    until = timezone.localtime(demo_sync.claimed_until).strftime("%Y-%m-%d %H:%M:%S")

    with pytest.raises(CommandError, match=rf"being run by worker-2 pid 4711 \(claim held until {until} \S+, "
                                           r"last renewed 3 s ago\); try again later"):
        call("runsync", str(demo_sync.pk))

    assert receiver.requests == []


def test_runsync_break_claim_refuses_a_holder_that_renews(demo_sync, receiver):
    claim_renewed(demo_sync, seconds_ago=3)

    with pytest.raises(CommandError, match="it is alive, so its claim was not broken"):
        call("runsync", str(demo_sync.pk), "--break-claim")

    assert receiver.requests == []


def test_runsync_break_claim_takes_a_silent_holders_claim_and_runs(demo_sync, receiver, settings):
    silent = settings.COHORTSYNC_CLAIM_LEASE_SECONDS * 0.6  # two quarter-lease renewals missed
    claim_renewed(demo_sync, seconds_ago=silent)
    stuck = SyncRun.objects.create(sync=demo_sync, status=SyncRun.Status.RUNNING, kind=SyncRun.Kind.FULL)
    with pytest.raises(CommandError, match="it has stopped renewing it: run again with --break-claim"):
        call("runsync", str(demo_sync.pk))

    output = call("runsync", str(demo_sync.pk), "--break-claim")

    assert "Broke the claim of worker-2 pid 4711" in output and "succeeded" in output
    stuck.refresh_from_db()
    assert stuck.status == SyncRun.Status.FAILED
    assert stuck.error_message == "stopped: worker-2 pid 4711 stopped renewing the claim; an operator broke it"
    demo_sync.refresh_from_db()
    assert (demo_sync.claimed_until, demo_sync.claimed_by) == (None, "")


def test_a_later_demo_without_url_keeps_the_connection_url(receiver):
    call("demo", "--url", receiver.url())
    call("demo", "--churn", "10")

    assert Connection.objects.get(name="Demo receiver").url == receiver.url()
