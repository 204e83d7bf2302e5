"""The example receiver (examples/receiver/) end to end: Cohortsync syncs a cohort to it,
signed, across full and diff runs, retries and failures, and its copy of the cohort ends
equal to the cohort in the database (docs/receiving.md, "Converging")."""

import json
import threading
import time
from urllib.request import urlopen

import pytest
from django.test import override_settings

from cohorts.models import CohortMember
from deliveries.models import SyncRun
from examples.receiver.cohort_receiver import CohortReceiver, CohortStore, SignatureCheck
from integrations.services import connection_rotate_signing_secret, connection_update
from outbound.models import DeliveryAttempt
from outbound.policy import Outcome
from outbound.signing import signing_secret_generate
from tests.conftest import run_now, set_members
from tests.factories import CohortFactory, ConnectionFactory, ProfileFactory, SyncFactory

pytestmark = pytest.mark.django_db


class RunningReceiver:
    """The example receiver on a loopback port, served from a thread."""

    def __init__(self, store: CohortStore, secrets=(), api_key: str = ""):
        self.server = CohortReceiver(("127.0.0.1", 0), store=store, secrets=list(secrets), api_key=api_key)
        self.store = store
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def copy(self, sync) -> set[str]:
        return set(self.store.cohorts.get(f"{sync.cohort.project_id}:{sync.cohort_id}", {}))


@pytest.fixture
def example(tmp_path):
    """Start the example receiver; returns a function that makes a signed sync to it."""
    running = []

    def start(secrets=None, state=None, api_key: str = "", page_size: int = 2):
        cohort = CohortFactory()
        secret = signing_secret_generate()
        receiver = RunningReceiver(CohortStore(state), secrets=[secret] if secrets is None else secrets,
                                   api_key=api_key).__enter__()
        running.append(receiver)
        # Made at the receiver's address: moving it there later would drop its secrets.
        connection = ConnectionFactory(project=cohort.project, url=receiver.server.url(), api_key=api_key,
                                       signing_secret=secret, page_size=page_size)
        return SyncFactory(cohort=cohort, connection=connection), receiver

    yield start
    for receiver in running:
        receiver.__exit__()


def cohort_ids(sync) -> set[str]:
    return set(CohortMember.objects.filter(cohort=sync.cohort).values_list("profile__distinct_id", flat=True))


def succeeded(sync) -> SyncRun:
    run = run_now(sync)
    assert run.status == SyncRun.Status.SUCCEEDED, run.error_message
    return run


def test_full_then_diff_runs_converge(example):
    sync, receiver = example()
    set_members(sync.cohort, ["A", "B", "C", "D", "E"])

    run = succeeded(sync)
    assert (run.kind, run.total_pages) == (SyncRun.Kind.FULL, 3)
    assert receiver.copy(sync) == cohort_ids(sync) == {"A", "B", "C", "D", "E"}

    set_members(sync.cohort, ["A", "C", "E", "F", "G", "H"])
    run = succeeded(sync)
    assert (run.kind, run.adds_count, run.removes_count) == (SyncRun.Kind.DIFF, 3, 2)
    assert receiver.copy(sync) == cohort_ids(sync)

    succeeded(sync)  # nothing changed: an empty add and an empty remove
    assert receiver.copy(sync) == cohort_ids(sync)
    assert receiver.store.duplicates == 0
    assert receiver.store.sessions == {}


def test_members_carry_their_identity_fields(example):
    sync, receiver = example()
    ProfileFactory(project=sync.cohort.project, distinct_id="A", email="ada@example.com", first_name="Ada")
    set_members(sync.cohort, ["A"])

    succeeded(sync)

    member = receiver.store.cohorts[f"{sync.cohort.project_id}:{sync.cohort_id}"]["A"]
    assert member["email"] == "ada@example.com" and member["first_name"] == "Ada"


def test_a_retried_page_the_receiver_already_applied_is_dropped(example, monkeypatch):
    sync, receiver = example()
    set_members(sync.cohort, ["A", "B"])
    succeeded(sync)
    set_members(sync.cohort, ["A", "C"])
    store_apply = receiver.store.apply
    slow_once = threading.Event()

    def apply_then_answer_too_late(page_id, body):
        action = store_apply(page_id, body)
        if not slow_once.is_set():
            slow_once.set()
            time.sleep(1.0)  # the receiver's own slowness: Cohortsync stops waiting after 0.5 s
        return action

    monkeypatch.setattr(receiver.store, "apply", apply_then_answer_too_late)
    with override_settings(COHORTSYNC_READ_TIMEOUT=0.5):
        run = succeeded(sync)

    attempts = list(DeliveryAttempt.objects.filter(run=run).order_by("page_number", "attempt_number"))
    assert [(a.page_number, a.attempt_number, a.outcome) for a in attempts][:2] == [
        (1, 1, Outcome.TRANSIENT), (1, 2, Outcome.SUCCESS)]
    assert attempts[0].page_id == attempts[1].page_id
    assert receiver.store.duplicates == 1
    assert receiver.copy(sync) == cohort_ids(sync) == {"A", "C"}


def test_a_full_load_that_fails_midway_leaves_the_copy_alone_until_its_resumption_completes_it(example):
    sync, receiver = example(page_size=1)
    set_members(sync.cohort, ["A", "B", "C"])
    store_apply = receiver.store.apply

    def fail_third_page(page_id, body):
        if body["parameters"]["page_info"]["page_count"] == 3:
            raise OSError("disk full")  # the receiver answers 503 to every try of page 3
        return store_apply(page_id, body)

    receiver.store.apply = fail_third_page
    with override_settings(COHORTSYNC_RETRY_DELAYS=[0.01]):
        run = run_now(sync)
    assert run.status == SyncRun.Status.FAILED
    assert receiver.copy(sync) == set()  # two of three pages: not a whole cohort, not applied
    assert len(receiver.store.sessions) == 1

    receiver.store.apply = store_apply
    set_members(sync.cohort, ["B", "C", "D"])
    resumed = succeeded(sync)
    assert (resumed.pk, resumed.kind) == (run.pk, SyncRun.Kind.FULL)  # page 3 of the same session
    assert receiver.copy(sync) == {"A", "B", "C"}  # the load as it was fixed, now complete
    assert receiver.store.sessions == {}

    succeeded(sync)  # the next diff brings what changed since
    assert receiver.copy(sync) == cohort_ids(sync) == {"B", "C", "D"}


def test_a_full_load_that_fails_midway_is_replaced_by_a_new_one_when_resuming_is_off(example, settings):
    settings.COHORTSYNC_RESUME_MAX_AGE_HOURS = 0
    sync, receiver = example(page_size=1)
    set_members(sync.cohort, ["A", "B", "C"])
    store_apply = receiver.store.apply

    def fail_third_page(page_id, body):
        if body["parameters"]["page_info"]["page_count"] == 3:
            raise OSError("disk full")
        return store_apply(page_id, body)

    receiver.store.apply = fail_third_page
    with override_settings(COHORTSYNC_RETRY_DELAYS=[0.01]):
        assert run_now(sync).status == SyncRun.Status.FAILED
    receiver.store.apply = store_apply
    set_members(sync.cohort, ["B", "C", "D"])
    run = succeeded(sync)
    assert run.kind == SyncRun.Kind.FULL  # the first load never completed
    assert receiver.copy(sync) == cohort_ids(sync) == {"B", "C", "D"}
    assert receiver.store.sessions == {}  # the abandoned session dropped when the new one completed


def test_signatures_are_checked_and_a_bad_one_pauses_the_sync(example):
    sync, receiver = example(secrets=["whsec_" + "QUJD" * 8])  # not the connection's secret
    set_members(sync.cohort, ["A"])

    run = run_now(sync)
    run.refresh_from_db()

    assert run.status == SyncRun.Status.PAUSED
    assert run.http_status == 401
    assert run.error_message == "invalid or missing webhook signature"
    assert receiver.copy(sync) == set()


def test_the_receiver_accepts_old_and_new_secrets_during_a_rotation(example):
    sync, receiver = example()
    set_members(sync.cohort, ["A"])
    succeeded(sync)

    new_secret = connection_rotate_signing_secret(connection=sync.connection, overlap_hours=1)
    # Cohortsync signs with both during the overlap; the receiver already switched to the new one.
    receiver.server.signature_check = SignatureCheck([new_secret])
    set_members(sync.cohort, ["A", "B"])

    succeeded(sync)
    assert receiver.copy(sync) == {"A", "B"}


def test_an_api_key_is_required_when_configured(example):
    sync, receiver = example(api_key="k-123")
    set_members(sync.cohort, ["A"])
    succeeded(sync)
    assert receiver.copy(sync) == {"A"}

    connection_update(connection=sync.connection, api_key="wrong")
    set_members(sync.cohort, ["A", "B"])
    run = run_now(sync)
    run.refresh_from_db()
    assert (run.status, run.http_status, run.error_message) == (SyncRun.Status.PAUSED, 401, "invalid API key")


def test_the_copy_survives_a_restart_with_a_state_file(example, tmp_path):
    state = tmp_path / "cohorts.json"
    sync, receiver = example(state=state)
    set_members(sync.cohort, ["A", "B", "C"])
    succeeded(sync)

    restarted = CohortStore(state)
    assert restarted.cohorts == receiver.store.cohorts
    assert restarted.seen == receiver.store.seen
    with urlopen(receiver.server.url()) as answer:
        assert json.loads(answer.read()) == {f"{sync.cohort.project_id}:{sync.cohort_id}": ["A", "B", "C"]}


def test_a_diff_that_fails_midway_still_converges(example):
    sync, receiver = example()
    set_members(sync.cohort, ["A", "B"])
    succeeded(sync)
    set_members(sync.cohort, ["A", "C"])  # the diff: add C (page 1), remove B (page 2)
    store_apply = receiver.store.apply

    def fail_removals(page_id, body):
        if body["action"] == "remove_members":
            raise OSError("disk full")
        return store_apply(page_id, body)

    receiver.store.apply = fail_removals
    with override_settings(COHORTSYNC_RETRY_DELAYS=[0.01]):
        assert run_now(sync).status == SyncRun.Status.FAILED
    assert receiver.copy(sync) == {"A", "B", "C"}  # C was added before the run failed

    receiver.store.apply = store_apply
    set_members(sync.cohort, ["A"])  # C leaves again before the next run
    succeeded(sync)  # the resumption: B's removal
    assert receiver.copy(sync) == {"A", "C"}
    succeeded(sync)  # the next diff: C's

    assert receiver.copy(sync) == cohort_ids(sync) == {"A"}
