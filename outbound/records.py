"""Attempt records: every try of every POST, kept and written in batches (one INSERT every
few pages or batches rather than one a try). Apps add their own progress to a flush."""

from django.contrib.contenttypes.models import ContentType
from django.db import connection as db, models
from django.db.models.sql import InsertQuery

from .models import DeliveryAttempt
from .sender import PostResult


class AttemptRecords:
    """The attempts of one source (a sync run, a message run, an alert firing)."""

    def __init__(self, source: models.Model):
        self.source_kind = ContentType.objects.get_for_model(source)  # cached after the first call
        self.source_id = source.pk
        self.pending: list[DeliveryAttempt] = []

    def attempt(self, *, page_number: int, page_id: str, action: str, attempt_number: int,
                result: PostResult) -> DeliveryAttempt:
        attempt = DeliveryAttempt(
            source_kind=self.source_kind, source_id=self.source_id, page_number=page_number, page_id=page_id,
            action=action, attempt_number=attempt_number, outcome=result.verdict.outcome,
            http_status=result.http_status, latency_ms=result.latency_ms,
            response_excerpt=result.response_excerpt, error=result.verdict.message,
        )
        self.pending.append(attempt)
        return attempt

    def write_attempts(self) -> None:
        if self.pending:
            DeliveryAttempt.objects.bulk_create(self.pending)
            self.pending = []

    def pending_insert(self) -> tuple[str, list]:
        """The INSERT of the pending attempts as SQL and params (what bulk_create would send), for
        an app that writes them in one statement with its progress; it then calls `written()`."""
        fields = [field for field in DeliveryAttempt._meta.concrete_fields if not field.primary_key]
        query = InsertQuery(DeliveryAttempt)
        query.insert_values(fields, self.pending)
        [(sql, params)] = query.get_compiler(connection=db).as_sql()
        return sql, list(params)

    def written(self) -> None:
        self.pending = []
