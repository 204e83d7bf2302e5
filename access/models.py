from django.conf import settings
from django.db import models

from cohorts.models import Project


class HashedKey(models.Model):
    """A secret key of which only a hash is stored: the key itself is shown once, when it is made
    (access.services.hashed_key_create). Subclasses add the project, the name and what else is theirs."""

    # The key's first characters: shown in lists to tell keys apart.
    prefix = models.CharField(max_length=16, editable=False)
    # SHA-256 of the whole key, hex: keys are random tokens of 24 bytes or more, so no slow hash is needed.
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class ApiKey(HashedKey):
    """A project's key for the REST API. Only a hash of the secret is stored; the key is shown once."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=200, help_text="What uses this key, e.g. “nightly CRM export”.")

    class Meta(HashedKey.Meta):
        verbose_name = "API key"
        # How a key is found: by its prefix, then its hash compared in constant time (access.selectors).
        indexes = [models.Index(fields=["prefix"], name="api_key_prefix")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
