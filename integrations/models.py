from django.core.exceptions import ValidationError
from django.db import models

from cohorts.models import Project

from .fields import EncryptedTextField
from .validation import validate_custom_headers, validate_destination_url


class Connection(models.Model):
    """Where a sync delivers: a webhook URL with its credentials and payload format."""

    class Format(models.TextChoices):
        MIXPANEL = "mixpanel", "Mixpanel cohort webhook"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="connections")
    name = models.CharField(max_length=200)
    url = models.URLField(max_length=2000)
    auth_username = models.CharField("Basic Auth username", max_length=200, blank=True, default="")
    # Secrets: encrypted at rest, write-only in every interface.
    auth_password = EncryptedTextField("Basic Auth password", blank=True, default="")
    api_key = EncryptedTextField("API key (sent as x-api-key)", blank=True, default="")
    headers = models.JSONField("custom headers", default=dict, blank=True)
    format = models.CharField(max_length=20, choices=Format.choices, default=Format.MIXPANEL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        validate_destination_url(self.url)
        validate_custom_headers(self.headers, has_api_key=bool(self.api_key))
        if self.auth_password and not self.auth_username:
            raise ValidationError({"auth_username": "A Basic Auth password needs a username."})

    @property
    def has_password(self) -> bool:
        return bool(self.auth_password)

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key)


class ReceivedWebhook(models.Model):
    """A request that reached the built-in test receiver (development and demos)."""

    inbox = models.SlugField(max_length=100)
    received_at = models.DateTimeField(auto_now_add=True)
    headers = models.JSONField(default=dict)
    body = models.TextField()
    action = models.CharField(max_length=30, blank=True, default="")
    session_id = models.CharField(max_length=100, blank=True, default="")
    page_id = models.CharField(max_length=100, blank=True, default="")

    class Meta:
        indexes = [models.Index(fields=["inbox", "-received_at"], name="received_inbox_recent")]
        ordering = ["-received_at", "-id"]
