"""A message run: reserve recipients (SQL) → POST batches of 50 → mark each batch sent or give it back.

Built on the sync engine's HTTP layer and retry loop (outbound.sender) and its attempt
records; what differs is the delivered state: per-user send records whose unique
(message, profile, sequence) makes "at most once" and the per-user limits hold when
runs overlap, retry or crash (docs/contract.md, "Legacy user messages").
"""

import dataclasses
import logging
import uuid
from datetime import timedelta
from urllib.parse import urlencode

import orjson
from django.conf import settings
from django.db import connection as db, transaction
from django.db.models import Case, Exists, OuterRef, Value, When
from django.utils import timezone

from cohorts.models import IDENTITY_FIELDS, Profile
from cohorts.selectors import cohort_membership
from outbound.claims import ClaimLost, claim_heartbeat, claim_release, claim_renew, claim_take
from outbound.ids import request_id
from outbound.limits import ReceiverBusy, run_slot
from outbound.policy import Outcome, Verdict
from outbound.records import AttemptRecords
from outbound.runs import run_claim_lost, run_fail, run_finish, run_skip, run_start
from outbound.sender import Destination, open_session, post_with_retries

from . import policy
from .models import Message, MessageRun, MessageSend

logger = logging.getLogger(__name__)

# Identity columns go out under Mixpanel's reserved profile property names (docs/contract.md, "Legacy user messages").
IDENTITY_PROPERTIES = tuple(zip(IDENTITY_FIELDS, ("$email", "$first_name", "$last_name", "$phone")))
# Reserving more rows than this refreshes the table's statistics (see reserve_recipients).
ANALYZE_AFTER_RESERVING = 10_000


@dataclasses.dataclass(frozen=True)
class Recipient:
    profile_id: int
    distinct_id: str
    email: str
    first_name: str
    last_name: str
    phone_number: str
    properties_json: str | dict | None


def message_run(*, message_id: int, trigger: str = "schedule", run_id: int | None = None) -> MessageRun | None:
    """Run a message once: everyone who matches now and may receive it gets one POST.

    A run holds the message's claim (outbound.claims), as a sync run holds its sync: a second
    run while one is going is skipped. The reservations (unique per message, user and
    sequence) still make a run whose lease expired harmless to the next.
    """
    token = claim_take(subject=Message.objects.filter(pk=message_id, state=Message.State.ACTIVE))
    if token is None:
        run_skip(model=MessageRun, run_id=run_id, reason=message_not_run_reason(message_id=message_id))
        return None
    run = None
    try:
        with claim_heartbeat(subject=Message.objects.filter(pk=message_id), token=token):
            message = Message.objects.select_related("cohort", "connection").get(pk=message_id)
            run = run_start(runs=message.runs, run_id=run_id, trigger=trigger)
            release_abandoned_sends(message=message)
            reserved = reserve_recipients(run=run, message=message)
            run.users_count = reserved
            run.total_batches = -(-reserved // policy.BATCH_SIZE)
            run.save(update_fields=["users_count", "total_batches"])
            verdict = deliver_batches(run=run, message=message, token=token)
            finish_message_run(run=run, message=message, verdict=verdict)
        return run
    except ClaimLost as exc:
        logger.warning("message %s: %s", message_id, exc)
        return run_claim_lost(run=run)
    except Exception as exc:
        logger.exception("message %s: run failed with an internal error", message_id)
        if run is not None:
            run_fail(model=MessageRun, run_id=run.pk, reason=f"internal error: {exc!r}")
        raise
    finally:
        if run is not None:
            # Whatever this run reserved and did not send goes back for the next attempt.
            MessageSend.objects.filter(run_id=run.pk, status=MessageSend.Status.PENDING).delete()
        claim_release(subject=Message.objects.filter(pk=message_id), token=token)


def message_not_run_reason(*, message_id: int) -> str:
    """Why a message's run could not claim it: deleted, not active (which state), or another run holds it."""
    state = Message.objects.filter(pk=message_id).values_list("state", flat=True).first()
    if state is None:
        return "not run: the message was deleted"
    if state != Message.State.ACTIVE:
        return f"not run: the message is {state}"
    return "not run: another run of the message was in progress"


def release_abandoned_sends(*, message: Message) -> int:
    """Reservations of runs that are over, or whose worker stopped long ago: give them back.

    A live run's reservations are never older than the lease (it refreshes them), so a
    second worker running the same message leaves them alone.
    """
    stale_before = timezone.now() - timedelta(seconds=settings.COHORTSYNC_CLAIM_LEASE_SECONDS)
    # A run still `running` long after it started, holding no fresh reservation, lost its worker.
    fresh = MessageSend.objects.filter(run=OuterRef("pk"), status=MessageSend.Status.PENDING,
                                       reserved_at__gte=stale_before)
    MessageRun.objects.filter(message=message, status=MessageRun.Status.RUNNING,
                              started_at__lt=stale_before).exclude(Exists(fresh)).update(
        status=MessageRun.Status.FAILED, finished_at=timezone.now(),
        error_message="abandoned: its worker stopped mid-run (killed, or cut off from the database) and its claim lapsed",
    )
    pending = MessageSend.objects.filter(message=message, status=MessageSend.Status.PENDING)
    released = pending.exclude(run__status=MessageRun.Status.RUNNING).delete()[0]
    released += pending.filter(reserved_at__lt=stale_before).delete()[0]
    return released


def reserve_recipients(*, run: MessageRun, message: Message) -> int:
    """Reserve, in one INSERT … SELECT, a send for everyone in the cohort who may get one now.

    Once-per-user messages: users with no send record at all (sequence 1). Recurring ones:
    users with nothing in flight and fewer than `limit_count` sends in the last
    `limit_days`, as their next sequence number. Two runs that pick the same user pick the
    same (message, profile, sequence): the second insert conflicts and skips them.
    """
    membership_sql, membership_params = cohort_membership(cohort=message.cohort).query.sql_with_params()
    sends = MessageSend._meta.db_table
    adapt = db.ops.adapt_datetimefield_value  # raw SQL: store datetimes as the ORM would (SQLite text)
    now = timezone.now()
    pending, sent = MessageSend.Status.PENDING, MessageSend.Status.SENT
    if message.once_per_user:
        # EXCEPT, not NOT EXISTS: with no statistics for a new cohort PostgreSQL planned the
        # anti-join as a nested loop that rescans the rows this very INSERT adds (quadratic,
        # docs/benchmarks.md). A set operation is hashed once, before anything is inserted.
        sql = f"""INSERT INTO {sends} (message_id, profile_id, sequence, run_id, batch_number, status, reserved_at)
            SELECT %s, c.profile_id, 1, %s, 0, %s, %s
            FROM (SELECT m.profile_id FROM ({membership_sql}) m
                  EXCEPT SELECT s.profile_id FROM {sends} s WHERE s.message_id = %s) c
            WHERE TRUE
            ON CONFLICT (message_id, profile_id, sequence) DO NOTHING"""
        params = [message.pk, run.pk, pending, adapt(now), *membership_params, message.pk]
    else:
        window_start = now - timedelta(days=message.limit_days)
        # The history is computed once (MATERIALIZED): joined as a correlated subquery, a new
        # message's empty history was planned as a nested loop that rescanned the rows this
        # very INSERT adds (quadratic, docs/benchmarks.md).
        materialized = "MATERIALIZED" if db.vendor == "postgresql" else ""
        sql = f"""WITH history AS {materialized} (
                SELECT profile_id, MAX(sequence) AS last_sequence,
                       SUM(CASE WHEN status = %s AND sent_at > %s THEN 1 ELSE 0 END) AS recent,
                       SUM(CASE WHEN status = %s THEN 1 ELSE 0 END) AS in_flight
                FROM {sends} WHERE message_id = %s GROUP BY profile_id)
            INSERT INTO {sends} (message_id, profile_id, sequence, run_id, batch_number, status, reserved_at)
            SELECT %s, m.profile_id, COALESCE(h.last_sequence, 0) + 1, %s, 0, %s, %s
            FROM ({membership_sql}) m LEFT JOIN history h ON h.profile_id = m.profile_id
            WHERE h.profile_id IS NULL OR (h.in_flight = 0 AND h.recent < %s)
            ON CONFLICT (message_id, profile_id, sequence) DO NOTHING"""
        params = [sent, adapt(window_start), pending, message.pk, message.pk, run.pk, pending, adapt(now),
                  *membership_params, message.limit_count]
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        reserved = max(cursor.rowcount, 0)
        if reserved >= ANALYZE_AFTER_RESERVING and db.vendor == "postgresql":
            # Fresh statistics, or the per-batch "mark sent" updates are planned for the
            # table as it was (say, empty) and scan all of it each time: quadratic.
            cursor.execute(f"ANALYZE {sends}")
    return reserved


def stream_batches(*, run: MessageRun, batch_size: int = policy.BATCH_SIZE, batches_per_read: int = 20):
    """The run's reserved users, a batch at a time, by profile id (keyset: flat memory).

    Read several batches per query: at 50 users a POST, a query per batch would cost as
    much as the POST itself.
    """
    sends = MessageSend._meta.db_table
    profile = Profile._meta.db_table
    properties_column = "p.properties::text" if db.vendor == "postgresql" else "p.properties"
    # The LIMIT sits in a subquery so the page is found by the (run, profile) index first:
    # planned as one join, a fresh (unanalysed) send table led PostgreSQL to walk the
    # profiles from the start for every page (quadratic).
    sql = f"""SELECT s.profile_id, p.distinct_id, p.email, p.first_name, p.last_name, p.phone_number,
                     {properties_column}
              FROM (SELECT profile_id FROM {sends} WHERE run_id = %s AND status = %s AND profile_id > %s
                    ORDER BY profile_id LIMIT %s) s
              JOIN {profile} p ON p.id = s.profile_id
              ORDER BY s.profile_id"""
    last_profile_id = 0
    with db.cursor() as cursor:
        while True:
            cursor.execute(sql, [run.pk, MessageSend.Status.PENDING, last_profile_id, batch_size * batches_per_read])
            rows = cursor.fetchall()
            if not rows:
                return
            last_profile_id = rows[-1][0]
            for start in range(0, len(rows), batch_size):
                yield [Recipient(*row) for row in rows[start:start + batch_size]]


def user_entry(recipient: Recipient, properties: tuple[str, ...] = ()) -> dict:
    """One user as the legacy webhook sent it: `$distinct_id` and the profile's `$properties`."""
    custom = recipient.properties_json
    if isinstance(custom, str):
        custom = orjson.loads(custom)
    if type(custom) is not dict:
        custom = {}
    if properties:
        custom = {name: custom[name] for name in properties if name in custom}
    values = dict(custom)
    for column, name in IDENTITY_PROPERTIES:
        value = getattr(recipient, column)
        if value:
            values[name] = value
    return {"$distinct_id": recipient.distinct_id, "$properties": values}


def users_body(recipients: list[Recipient], properties: tuple[str, ...] = ()) -> bytes:
    """`application/x-www-form-urlencoded` with one field, `users`: a JSON list (docs/contract.md)."""
    users = orjson.dumps([user_entry(r, properties) for r in recipients]).decode()
    return urlencode({policy.USERS_FIELD: users}).encode()


def form_destination(connection) -> Destination:
    """The connection as a message sends to it: same URL, auth, headers and signing; form body."""
    return dataclasses.replace(Destination.from_connection(connection), content_type=policy.FORM_CONTENT_TYPE)


def batch_id(session_id: uuid.UUID, batch_number: int) -> str:
    """Stable across the retries of a batch (its `webhook-id`)."""
    return request_id(session_id, f"batch-{batch_number}")


class BatchRecords(AttemptRecords):
    """A run's outcomes, written in one transaction every few batches rather than 3 writes a batch.

    A failure is written at once. Sends marked sent late are still pending meanwhile, held
    by this run: a crash before the write re-sends those batches (never loses them).
    """

    FLUSH_EVERY_BATCHES = 20

    def __init__(self, run: MessageRun, token: uuid.UUID):
        super().__init__(run)
        self.run = run
        self.token = token
        self.sent: list[tuple[int, list[int]]] = []  # (batch number, its profile ids in order)
        self.delivered = self.failed = self.sent_users = 0
        self.reserved_at_refreshed = self.flushed_at = timezone.now()

    def batch_sent(self, batch_number: int, profile_ids: list[int]) -> None:
        self.delivered += 1
        self.sent.append((batch_number, profile_ids))
        # A slow receiver: write at least every lease/8, so reservations stay fresh (see flush).
        overdue = (timezone.now() - self.flushed_at).total_seconds() > settings.COHORTSYNC_CLAIM_LEASE_SECONDS / 8
        if len(self.sent) >= self.FLUSH_EVERY_BATCHES or overdue:
            self.flush()

    def batch_failed(self, profile_ids: list[int]) -> None:
        self.failed += 1
        self.flush()
        # Unsent: deleted, so the next attempt sends them again (docs/contract.md, "Legacy user messages").
        MessageSend.objects.filter(run_id=self.run.pk, status=MessageSend.Status.PENDING,
                                   profile_id__in=profile_ids).delete()

    def flush(self) -> None:
        now = timezone.now()
        refresh = (now - self.reserved_at_refreshed).total_seconds() > settings.COHORTSYNC_CLAIM_LEASE_SECONDS / 4
        with transaction.atomic():
            self.write_attempts()
            pending = MessageSend.objects.filter(run_id=self.run.pk, status=MessageSend.Status.PENDING)
            if self.sent:
                # One UPDATE for all: batches go out in profile order and a failed batch's rows
                # are deleted at once, so this run's pending rows in the range are exactly these.
                batch_of = Case(*[When(profile_id__lte=ids[-1], then=Value(number)) for number, ids in self.sent])
                self.sent_users += pending.filter(
                    profile_id__gte=self.sent[0][1][0], profile_id__lte=self.sent[-1][1][-1]
                ).update(status=MessageSend.Status.SENT, sent_at=timezone.now(), batch_number=batch_of)
                self.sent = []
            if refresh:
                # Keep this run's reservations fresh so no other run takes them as abandoned.
                pending.update(reserved_at=now)
                self.reserved_at_refreshed = now
            MessageRun.objects.filter(pk=self.run.pk).update(
                batches_delivered=self.delivered, batches_failed=self.failed, sent_count=self.sent_users)
        self.flushed_at = timezone.now()
        self.run.batches_delivered, self.run.batches_failed = self.delivered, self.failed
        self.run.sent_count = self.sent_users
        # The message's lease too, after the write: what was sent stays marked sent without it.
        if refresh and not claim_renew(subject=Message.objects.filter(pk=self.run.message_id), token=self.token):
            raise ClaimLost(f"claim lost during run {self.run.pk}")


def deliver_batches(*, run: MessageRun, message: Message, token: uuid.UUID) -> Verdict:
    """POST each batch with the contract's retries; a 2xx marks exactly its users sent.

    A batch that fails is given back and the run goes on (the users of other batches are
    not held hostage); a pause verdict, or several failed batches in a row, stops it.
    """
    destination = form_destination(message.connection)
    properties = tuple(message.properties or ())
    records = BatchRecords(run, token)
    batch_number = consecutive_failures = 0
    last_failure: Verdict | None = None
    try:
        with run_slot(destination.receiver_limits), open_session() as session:  # the connection's concurrent-run limit
            for recipients in stream_batches(run=run):
                batch_number += 1
                verdict = _send_batch(session=session, destination=destination, run=run, batch_number=batch_number,
                                      body=users_body(recipients, properties), records=records)
                profile_ids = [r.profile_id for r in recipients]
                if verdict.outcome is Outcome.SUCCESS:
                    records.batch_sent(batch_number, profile_ids)
                    consecutive_failures = 0
                    continue
                records.batch_failed(profile_ids)
                consecutive_failures += 1
                last_failure = verdict
                if verdict.outcome is Outcome.PAUSE or consecutive_failures >= policy.MAX_CONSECUTIVE_FAILED_BATCHES:
                    break
    except ReceiverBusy as exc:
        last_failure = Verdict(Outcome.TRANSIENT, str(exc))
    finally:
        records.flush()  # also when a batch raised: what was sent stays marked sent
    return last_failure or Verdict(Outcome.SUCCESS)


def _send_batch(*, session, destination: Destination, run: MessageRun, batch_number: int, body: bytes,
                records: BatchRecords) -> Verdict:
    page_id = batch_id(run.session_id, batch_number)

    def record(attempt: int, result) -> None:
        records.attempt(page_number=batch_number, page_id=page_id, action=policy.USERS_FIELD, attempt_number=attempt,
                        result=result)
        if result.verdict.outcome is not Outcome.SUCCESS:
            records.flush()  # trouble is visible while the run goes on

    return post_with_retries(session=session, destination=destination, body=body, page_id=page_id, record=record)


def finish_message_run(*, run: MessageRun, message: Message, verdict: Verdict) -> None:
    # services queue runs of this module's function
    from .services import message_pause, message_record_failure, message_record_success

    def failed() -> None:
        if message_record_failure(message=message, reason=verdict.message, status=verdict.code):
            # One failure too many paused the message: its run reads "Paused", as a refusal's does.
            MessageRun.objects.filter(pk=run.pk).update(status=MessageRun.Status.PAUSED)
            run.status = MessageRun.Status.PAUSED

    run_finish(
        run=run, verdict=verdict, succeeded=lambda: message_record_success(message=message),
        paused=lambda: message_pause(message=message, reason=verdict.message, status=verdict.code),
        failed=failed,
    )
