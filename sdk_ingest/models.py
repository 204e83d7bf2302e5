from django.db import models

from access.models import HashedKey
from cohorts.models import Project


class IngestKey(HashedKey):
    """A project's credential for the Segment- and Mixpanel-compatible endpoints. Only a hash of
    the secret is stored; the key is shown once."""

    class Kind(models.TextChoices):
        SEGMENT_WRITE_KEY = "segment_write_key", "Segment write key"
        MIXPANEL_TOKEN = "mixpanel_token", "Mixpanel project token"
        MIXPANEL_SECRET = "mixpanel_secret", "Mixpanel project secret"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="ingest_keys")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    name = models.CharField(max_length=200, help_text="What sends with this key, e.g. “web app”.")

    class Meta(HashedKey.Meta):
        # A client sends the key itself (a Mixpanel token even in the body): a request finds its
        # key by the key's hash, through the unique index on key_hash.
        verbose_name = "SDK ingestion key"

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()}, {self.prefix}…)"


class ReceivedInsertId(models.Model):
    """An event id already stored for a project (Mixpanel `$insert_id`, Segment `messageId`):
    a resent event with it is acknowledged and not stored twice. Kept for the event retention
    window, like the events themselves."""

    # No database FK, as Event.project: a check per row at COMMIT; Django's CASCADE deletes them.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False,
                                db_constraint=False)
    insert_id = models.CharField(max_length=255)
    received_at = models.DateTimeField()

    class Meta:
        constraints = [
            # Also the index the claim of a batch's ids uses.
            models.UniqueConstraint(fields=["project", "insert_id"], name="received_insert_id_unique"),
        ]
        indexes = [models.Index(fields=["received_at"], name="received_insert_id_time")]  # pruning
