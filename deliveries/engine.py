"""The sync engine: plan → stage (SQL) → stream pages → send (retry policy) → commit.

A run fixes its picture once, in the staging table, and never reads the live cohort
again; the snapshot (delivered state) changes only when every page succeeded, and then
by the size of the change (DESIGN.md). A full run over an empty delivered state (a first
run) fixes its picture in the snapshot table instead, as a new generation that success
makes current.
"""

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection as db, transaction
from django.db.models import Q
from django.utils import timezone

from cohorts.models import Profile
from cohorts.selectors import cohort_membership
from cohorts.services import cohort_size_record

from . import payloads, policy, services
from .models import DeliveryAttempt, MemberOp, SnapshotMember, StagedMember, Sync, SyncRun
from .policy import Outcome, Verdict
from .signals import sync_run_finished
from .sender import Destination, open_session, post_with_retries
from .templating import PayloadTemplateError

logger = logging.getLogger(__name__)

ACTIONS = {MemberOp.MEMBER: "members", MemberOp.ADD: "add_members", MemberOp.REMOVE: "remove_members"}


@dataclass(frozen=True)
class RunPlan:
    kind: str  # SyncRun.Kind
    reason: str


@dataclass(frozen=True)
class PagePlan:
    """Pages of one action in a run; at least one, so an empty diff still shows life."""

    op: MemberOp
    members: int
    page_size: int = policy.PAGE_SIZE
    # Set when the pages come from this snapshot generation rather than the staging table.
    snapshot_generation: int | None = None

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.members / self.page_size))


class ClaimLost(Exception):
    """Another worker took the sync after our lease expired: stop sending at once."""


def sync_run(
    *, sync_id: int, full: bool = False, trigger: str = "schedule", run_id: int | None = None, progress=None
) -> SyncRun | None:
    """Run one sync if it can be claimed; returns the run, or None when not claimed.

    A scheduled trigger runs only a due sync; others (`manual`, `api`, `cli`) run it now.
    `run_id` names a run queued by services.sync_request_run, which this run then fills in.
    """
    token = services.sync_claim(sync_id=sync_id, require_due=(trigger == "schedule"))
    if token is None:
        if run_id is not None:
            SyncRun.objects.filter(pk=run_id, status=SyncRun.Status.QUEUED).update(
                status=SyncRun.Status.SKIPPED, finished_at=timezone.now(),
                error_message="not run: the sync was paused, finished or already running",
            )
        return None
    run = None
    try:
        abandon_unfinished_runs(sync_id=sync_id)
        sync = Sync.objects.select_related("cohort", "connection").get(pk=sync_id)
        plan = plan_run(sync=sync, full=full)
        run = _start_run(sync=sync, plan=plan, trigger=trigger, run_id=run_id)
        page_plans = stage_members(run=run, sync=sync)
        verdict = deliver_run(run=run, sync=sync, page_plans=page_plans, token=token, progress=progress)
        finish_run(run=run, sync=sync, verdict=verdict, token=token)
        return run
    except ClaimLost as exc:
        logger.warning("%s", exc)
        SyncRun.objects.filter(pk=run.pk).update(
            status=SyncRun.Status.FAILED, finished_at=timezone.now(), error_message="stopped: the claim expired"
        )
        run.refresh_from_db()
        return run
    except Exception as exc:
        logger.exception("sync %s: run failed with an internal error", sync_id)
        if run is not None:
            SyncRun.objects.filter(pk=run.pk).update(
                status=SyncRun.Status.FAILED, finished_at=timezone.now(), error_message=f"internal error: {exc!r}"[:500]
            )
        raise
    finally:
        if run is not None and not _carries_over(run):
            StagedMember.objects.filter(run_id=run.pk).delete()
            if run.kind == SyncRun.Kind.FULL and run.status != SyncRun.Status.SUCCEEDED:
                SnapshotMember.objects.filter(sync_id=sync_id, generation=run.pk).delete()
        services.sync_release(sync_id=sync_id, token=token)


def _carries_over(run: SyncRun) -> bool:
    """An unsuccessful diff run keeps its staging rows for the next run (see carry_over)."""
    run.refresh_from_db(fields=["status", "kind"])
    return run.kind == SyncRun.Kind.DIFF and run.status != SyncRun.Status.SUCCEEDED


def _start_run(*, sync: Sync, plan: "RunPlan", trigger: str, run_id: int | None) -> SyncRun:
    fields = dict(kind=plan.kind, reason=plan.reason, trigger=trigger, status=SyncRun.Status.RUNNING)
    if run_id is not None:
        queued = SyncRun.objects.filter(pk=run_id, sync=sync, status=SyncRun.Status.QUEUED)
        if queued.update(**fields, started_at=timezone.now()):
            return SyncRun.objects.get(pk=run_id)
    return SyncRun.objects.create(sync=sync, **fields)


def abandon_unfinished_runs(*, sync_id: int) -> None:
    """Runs left `running` by a killed worker: mark them failed (full runs drop their staging
    rows and their snapshot generation).

    Called while holding the claim, so no live run of this sync can be among them.
    """
    current = Sync.objects.filter(pk=sync_id).values_list("snapshot_generation", flat=True).get()
    # Two index ranges rather than `<>`: the scan skips the current generation's rows.
    SnapshotMember.objects.filter(Q(generation__lt=current) | Q(generation__gt=current), sync_id=sync_id).delete()
    stale = SyncRun.objects.filter(sync_id=sync_id, status=SyncRun.Status.RUNNING)
    # A killed diff run may have delivered pages: its staging rows carry over (see carry_over).
    StagedMember.objects.filter(run_id__in=stale.exclude(kind=SyncRun.Kind.DIFF).values("pk")).delete()
    stale = list(stale.values_list("pk", flat=True))
    if stale:
        SyncRun.objects.filter(pk__in=stale).update(
            status=SyncRun.Status.FAILED, finished_at=timezone.now(), error_message="abandoned: the worker stopped"
        )


def plan_run(*, sync: Sync, full: bool = False) -> RunPlan:
    if sync.snapshot_at is None:
        return RunPlan(SyncRun.Kind.FULL, "first run")
    if full or sync.force_full:
        return RunPlan(SyncRun.Kind.FULL, "full refresh")
    if timezone.now() - sync.snapshot_at > timedelta(hours=settings.COHORTSYNC_SNAPSHOT_MAX_AGE_HOURS):
        return RunPlan(SyncRun.Kind.FULL, "snapshot expired")
    return RunPlan(SyncRun.Kind.DIFF, "diff")


# --- Stage: the run's fixed picture, computed by the database ----------------------------


def stage_members(*, run: SyncRun, sync: Sync) -> list[PagePlan]:
    membership_sql, membership_params = cohort_membership(cohort=sync.cohort).query.sql_with_params()
    staged = StagedMember._meta.db_table
    profile = Profile._meta.db_table
    snapshot = SnapshotMember._meta.db_table
    new_generation = writes_new_generation(run=run, sync=sync)
    with db.cursor() as cursor:
        if new_generation:
            cursor.execute(
                f"""INSERT INTO {snapshot} (sync_id, generation, profile_id, distinct_id)
                SELECT %s, %s, m.profile_id, p.distinct_id
                FROM ({membership_sql}) m JOIN {profile} p ON p.id = m.profile_id""",
                [sync.pk, run.pk, *membership_params],
            )
            generation_size = cursor.rowcount
        elif run.kind == SyncRun.Kind.FULL:
            cursor.execute(
                f"""INSERT INTO {staged} (run_id, profile_id, op, distinct_id)
                SELECT %s, m.profile_id, {MemberOp.MEMBER}, p.distinct_id
                FROM ({membership_sql}) m JOIN {profile} p ON p.id = m.profile_id""",
                [run.pk, *membership_params],
            )
        else:
            # One pass gives both sides of the diff (FULL OUTER JOIN, DESIGN.md).
            cursor.execute(
                f"""INSERT INTO {staged} (run_id, profile_id, op, distinct_id)
                SELECT %s, COALESCE(m.profile_id, s.profile_id),
                       CASE WHEN s.profile_id IS NULL THEN {MemberOp.ADD} ELSE {MemberOp.REMOVE} END,
                       COALESCE(p.distinct_id, s.distinct_id)
                FROM ({membership_sql}) m
                FULL OUTER JOIN (SELECT profile_id, distinct_id FROM {snapshot}
                                 WHERE sync_id = %s AND generation = %s) s
                    ON s.profile_id = m.profile_id
                LEFT JOIN {profile} p ON p.id = m.profile_id
                WHERE m.profile_id IS NULL OR s.profile_id IS NULL""",
                [run.pk, *membership_params, sync.pk, sync.snapshot_generation],
            )
    counts = {MemberOp.MEMBER: generation_size} if new_generation else _staged_counts(run)
    # The cohort's size follows from the plain diff; carried-over rows re-send state, not change.
    size = counts.get(MemberOp.MEMBER, 0) if run.kind == SyncRun.Kind.FULL else (
        sync.snapshot_size + counts.get(MemberOp.ADD, 0) - counts.get(MemberOp.REMOVE, 0)
    )
    if carry_over(run=run, sync=sync, membership_sql=membership_sql, membership_params=membership_params):
        counts = _staged_counts(run)
    page_size = min(sync.connection.page_size or policy.PAGE_SIZE, policy.PAGE_SIZE)
    if run.kind == SyncRun.Kind.FULL:
        ops = [MemberOp.MEMBER]
    else:
        ops = [MemberOp.ADD, MemberOp.REMOVE]  # adds first, then removes (CONTRACT.md)
    generation = run.pk if new_generation else None
    page_plans = [PagePlan(op, counts.get(op, 0), page_size, generation) for op in ops]
    run.total_pages = sum(plan.pages for plan in page_plans)
    run.members_count = counts.get(MemberOp.MEMBER, 0)
    run.adds_count = counts.get(MemberOp.ADD, 0)
    run.removes_count = counts.get(MemberOp.REMOVE, 0)
    run.save(update_fields=["total_pages", "members_count", "adds_count", "removes_count"])
    cohort_size_record(cohort=sync.cohort, size=size)
    return page_plans


def writes_new_generation(*, run: SyncRun, sync: Sync) -> bool:
    """A full run over an empty delivered state stages straight into the snapshot table,
    under its run id as generation (see SnapshotMember.generation).

    A refresh of a non-empty snapshot stages as before, so its writes stay O(change). The
    answer cannot change during the run: only the claim holder writes the snapshot.
    """
    if run.kind != SyncRun.Kind.FULL:
        return False
    return not SnapshotMember.objects.filter(sync_id=sync.pk, generation=sync.snapshot_generation).exists()


def _staged_counts(run: SyncRun) -> dict[int, int]:
    with db.cursor() as cursor:
        cursor.execute(f"SELECT op, COUNT(*) FROM {StagedMember._meta.db_table} WHERE run_id = %s GROUP BY op",
                       [run.pk])
        return dict(cursor.fetchall())


def carry_over(*, run: SyncRun, sync: Sync, membership_sql: str, membership_params) -> bool:
    """Fold earlier unsuccessful diff runs into this one.

    Their pages may have reached the receiver although the snapshot did not move. Someone
    they added who has left again (or removed who has come back) now agrees with the
    snapshot, so the plain diff would never mention them and the receiver would keep the
    wrong state. A diff run re-sends their live state; a full run replaces everything anyway.
    Returns whether rows were added to this run.
    """
    staged = StagedMember._meta.db_table
    profile = Profile._meta.db_table
    unsuccessful = SyncRun.objects.filter(
        sync_id=sync.pk, kind=SyncRun.Kind.DIFF,
        status__in=[SyncRun.Status.FAILED, SyncRun.Status.PAUSED, SyncRun.Status.RUNNING],
    ).exclude(pk=run.pk)
    earlier = StagedMember.objects.filter(run_id__in=unsuccessful.values("pk"))
    if not earlier.exists():
        return False
    carried = 0
    if run.kind == SyncRun.Kind.DIFF:
        earlier_sql, earlier_params = earlier.values("profile_id").query.sql_with_params()
        with db.cursor() as cursor:
            cursor.execute(
                f"""INSERT INTO {staged} (run_id, profile_id, op, distinct_id)
                SELECT %s, c.profile_id,
                       CASE WHEN m.profile_id IS NULL THEN {MemberOp.REMOVE} ELSE {MemberOp.ADD} END,
                       COALESCE(p.distinct_id, (SELECT MAX(e.distinct_id) FROM {staged} e
                                                WHERE e.profile_id = c.profile_id AND e.run_id <> %s))
                FROM (SELECT x.profile_id FROM ({earlier_sql}) x
                      EXCEPT SELECT s.profile_id FROM {staged} s WHERE s.run_id = %s) c
                LEFT JOIN ({membership_sql}) m ON m.profile_id = c.profile_id
                LEFT JOIN {profile} p ON p.id = c.profile_id
                WHERE TRUE""",
                # EXCEPT, not NOT EXISTS on the table being filled: a nested-loop anti-join
                # would rescan the rows this INSERT adds (quadratic; see campaigns.sending).
                [run.pk, run.pk, *earlier_params, run.pk, *membership_params],
            )
            carried = cursor.rowcount
    earlier.delete()
    return carried > 0


def stream_pages(*, run: SyncRun, plan: PagePlan, properties: tuple[str, ...]) -> Iterator[list[payloads.MemberRow]]:
    """The members of one action, a page at a time (keyset pagination: memory flat in N).

    LEFT JOIN: a removal may name a profile deleted since it was delivered; it goes out
    with the distinct id the snapshot kept.
    """
    profile = Profile._meta.db_table
    if plan.snapshot_generation is None:
        source, where = StagedMember._meta.db_table, "st.run_id = %s AND st.op = %s"
        source_params = [run.pk, int(plan.op)]
    else:
        source, where = SnapshotMember._meta.db_table, "st.sync_id = %s AND st.generation = %s"
        source_params = [run.sync_id, plan.snapshot_generation]
    # Properties are decoded with orjson in payloads, not by the JSONField (about twice as fast).
    properties_column = "NULL"
    if properties:
        properties_column = "p.properties::text" if db.vendor == "postgresql" else "p.properties"
    # Column order is payloads.MemberRow's, with the keyset column last. The page is found
    # first, then joined: with fresh statistics a plain join LIMIT was planned as a merge
    # join walking the profiles from the start (120 ms a page instead of 2 ms).
    sql = f"""SELECT st.distinct_id, p.email, p.first_name, p.last_name, p.phone_number, {properties_column},
                     st.profile_id
              FROM (SELECT st.profile_id, st.distinct_id FROM {source} st
                    WHERE {where} AND st.profile_id > %s ORDER BY st.profile_id LIMIT %s) st
              LEFT JOIN {profile} p ON p.id = st.profile_id
              ORDER BY st.profile_id"""
    last_profile_id = 0
    make_row = payloads.MemberRow._make
    with db.cursor() as cursor:
        for _ in range(plan.pages):
            cursor.execute(sql, [*source_params, last_profile_id, plan.page_size])
            rows = cursor.fetchall()
            if rows:
                last_profile_id = rows[-1][6]
            yield [make_row(row[:6]) for row in rows]


# --- Send ------------------------------------------------------------------------------


def deliver_run(*, run: SyncRun, sync: Sync, page_plans: list[PagePlan], token, progress=None) -> Verdict:
    """Send every page in order; stop at the first page that does not succeed."""
    connection = sync.connection
    destination = Destination.from_connection(connection)
    try:
        render = payloads.page_renderer(connection)
    except PayloadTemplateError as exc:  # saved before validation tightened: an operator must fix it
        return Verdict(Outcome.PAUSE, f"the payload template is invalid: {exc}")
    properties = tuple(sync.properties or ())
    records = RunRecords(run)
    try:
        return _send_pages(run=run, sync=sync, page_plans=page_plans, token=token, progress=progress,
                           render=render, destination=destination, properties=properties, records=records)
    finally:
        records.flush()  # also when a page raised: what was tried stays on record


def _send_pages(*, run, sync, page_plans, token, progress, render, destination, properties, records) -> Verdict:
    page_count = 0
    notes = ""
    with open_session() as session:
        for plan in page_plans:
            for rows in stream_pages(run=run, plan=plan, properties=properties):
                page_count += 1
                context = payloads.PageContext(
                    action=ACTIONS[plan.op], project_id=str(sync.cohort.project_id), cohort_id=str(sync.cohort_id),
                    cohort_name=sync.cohort.name, cohort_description=sync.cohort.description,
                    session_id=str(run.session_id), page_id=payloads.page_id(run.session_id, page_count),
                    page_count=page_count, total_pages=run.total_pages, computed_time=int(run.started_at.timestamp()),
                )
                try:
                    body = render(context, rows, properties)
                except PayloadTemplateError as exc:
                    return Verdict(Outcome.PAUSE, f"the payload template failed on page {page_count}: {exc}")
                verdict = send_page(
                    session=session, destination=destination, run=run, body=body, action=context.action,
                    page_number=page_count, token=token, records=records,
                )
                if verdict.outcome is not Outcome.SUCCESS:
                    return verdict
                notes = notes or verdict.message
                records.page_delivered(page_count)
                if progress:
                    progress(len(rows))
    return Verdict(Outcome.SUCCESS, notes)


class RunRecords:
    """A run's attempt rows and progress, written in batches rather than 2 writes a page.

    Anything but a first-try success is written at once, so failures are visible live.
    """

    FLUSH_EVERY_PAGES = 50

    def __init__(self, run: SyncRun):
        self.run = run
        self.pending: list[DeliveryAttempt] = []
        self.progress_written = run.pages_delivered
        self.renewed_at = -math.inf
        self.claim_check_sql = None

    def hold_claim(self, token) -> bool:
        """Before every try: is the claim still ours? Renew the lease once a quarter of it has passed.

        The check is a read; the renewal is a write, and a committed write per page costs
        an fsync (about 5 ms here), so it happens only every lease/4 seconds.
        """
        now = time.monotonic()
        if now - self.renewed_at >= settings.COHORTSYNC_CLAIM_LEASE_SECONDS / 4:
            held = services.sync_renew_claim(sync_id=self.run.sync_id, token=token)
            self.renewed_at = now
            return held
        if self.claim_check_sql is None:
            # Compiled once: building the ORM query each time was half of the 0.57 ms a check cost.
            claim = Sync.objects.filter(pk=self.run.sync_id, claim_token=token).values("pk")
            self.claim_check_sql = claim.query.sql_with_params()
        with db.cursor() as cursor:
            cursor.execute(*self.claim_check_sql)
            return cursor.fetchone() is not None

    def attempt(self, attempt: DeliveryAttempt) -> None:
        self.pending.append(attempt)
        if attempt.outcome != Outcome.SUCCESS or attempt.attempt_number > 1 or len(self.pending) >= self.FLUSH_EVERY_PAGES:
            self.flush()

    def page_delivered(self, page_count: int) -> None:
        self.run.pages_delivered = page_count
        if page_count - self.progress_written >= self.FLUSH_EVERY_PAGES:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            DeliveryAttempt.objects.bulk_create(self.pending)
            self.pending = []
        if self.run.pages_delivered != self.progress_written:
            SyncRun.objects.filter(pk=self.run.pk).update(pages_delivered=self.run.pages_delivered)
            self.progress_written = self.run.pages_delivered


def send_page(*, session, destination: Destination, run: SyncRun, body: bytes, action: str, page_number: int,
              token, records: "RunRecords") -> Verdict:
    """One page with its retries, inside the run so pages stay in order (DESIGN.md)."""
    page_id = payloads.page_id(run.session_id, page_number)

    def before_try(attempt: int) -> None:
        if not records.hold_claim(token):
            raise ClaimLost(f"sync {run.sync_id}: claim lost during page {page_number}")

    def record(attempt: int, result) -> None:
        records.attempt(DeliveryAttempt(
            run=run, page_number=page_number, page_id=page_id, action=action, attempt_number=attempt,
            outcome=result.verdict.outcome, http_status=result.http_status, latency_ms=result.latency_ms,
            response_excerpt=result.response_excerpt, error=result.verdict.message,
        ))

    return post_with_retries(session=session, destination=destination, body=body, page_id=page_id,
                             before_try=before_try, record=record)


# --- Finish ----------------------------------------------------------------------------


def finish_run(*, run: SyncRun, sync: Sync, verdict: Verdict, token) -> None:
    now = timezone.now()
    if verdict.outcome is Outcome.SUCCESS:
        with transaction.atomic():
            # A run whose lease expired may have been superseded: only the holder commits.
            if not Sync.objects.select_for_update().filter(pk=sync.pk, claim_token=token).exists():
                raise ClaimLost(f"sync {sync.pk}: claim lost before the snapshot was committed")
            snapshot_size = commit_snapshot(run=run, sync=sync)
            SyncRun.objects.filter(pk=run.pk).update(
                status=SyncRun.Status.SUCCEEDED, finished_at=now, error_message=verdict.message
            )
            services.sync_record_success(sync=sync, snapshot_at=run.started_at, snapshot_size=snapshot_size)
        run.status = SyncRun.Status.SUCCEEDED
    elif verdict.outcome is Outcome.PAUSE:
        SyncRun.objects.filter(pk=run.pk).update(
            status=SyncRun.Status.PAUSED, finished_at=now, error_message=verdict.message, http_status=verdict.code
        )
        run.status = SyncRun.Status.PAUSED
        services.sync_pause(sync=sync, message=verdict.message, status=verdict.code, run=run)
    else:
        SyncRun.objects.filter(pk=run.pk).update(
            status=SyncRun.Status.FAILED, finished_at=now, error_message=verdict.message, http_status=verdict.code
        )
        run.status = SyncRun.Status.FAILED
        services.sync_record_failure(sync=sync, message=verdict.message, status=verdict.code)
    run.finished_at = now
    run.error_message = verdict.message
    sync_run_finished.send(sender=SyncRun, sync_id=sync.pk, run_id=run.pk, status=run.status)


def commit_snapshot(*, run: SyncRun, sync: Sync) -> int:
    """Advance the delivered state to the run's picture; writes O(change) (DESIGN.md)."""
    if writes_new_generation(run=run, sync=sync):
        # The run's members are already in the snapshot table: make them the delivered state.
        # The old generation was empty, so there is nothing to delete.
        Sync.objects.filter(pk=sync.pk).update(snapshot_generation=run.pk)
        sync.snapshot_generation = run.pk
        return run.members_count
    staged = StagedMember._meta.db_table
    snapshot = SnapshotMember._meta.db_table
    generation = sync.snapshot_generation
    with db.cursor() as cursor:
        if run.kind == SyncRun.Kind.FULL:
            cursor.execute(
                f"""DELETE FROM {snapshot} WHERE sync_id = %s AND generation = %s AND NOT EXISTS (
                    SELECT 1 FROM {staged} st WHERE st.run_id = %s AND st.profile_id = {snapshot}.profile_id)""",
                [sync.pk, generation, run.pk],
            )
            # ON CONFLICT rather than an anti-join: a planner that saw the snapshot table
            # empty once would loop over it for every inserted row (quadratic).
            cursor.execute(
                f"""INSERT INTO {snapshot} (sync_id, generation, profile_id, distinct_id)
                SELECT %s, %s, st.profile_id, st.distinct_id FROM {staged} st WHERE st.run_id = %s
                ON CONFLICT (sync_id, generation, profile_id) DO NOTHING""",
                [sync.pk, generation, run.pk],
            )
            return run.members_count
        cursor.execute(
            f"""DELETE FROM {snapshot} WHERE sync_id = %s AND generation = %s AND profile_id IN (
                SELECT profile_id FROM {staged} WHERE run_id = %s AND op = {MemberOp.REMOVE})""",
            [sync.pk, generation, run.pk],
        )
        removed = cursor.rowcount
        # Carried-over rows may re-add someone the snapshot already holds: not an error.
        cursor.execute(
            f"""INSERT INTO {snapshot} (sync_id, generation, profile_id, distinct_id)
            SELECT %s, %s, profile_id, distinct_id FROM {staged} WHERE run_id = %s AND op = {MemberOp.ADD}
            ON CONFLICT (sync_id, generation, profile_id) DO NOTHING""",
            [sync.pk, generation, run.pk],
        )
        added = cursor.rowcount
    return sync.snapshot_size + added - removed
