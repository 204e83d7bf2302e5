from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from cohorts.models import Project
from outbound.limits import MAX_CONCURRENT_RUNS, MAX_REQUESTS_PER_SECOND, MIN_REQUESTS_PER_SECOND
from outbound.policy import PAGE_SIZE

from .fields import EncryptedHeadersField, EncryptedTextField, stored_value
from .validation import validate_content_type, validate_custom_headers, validate_destination_url

MAX_PAGE_SIZE = PAGE_SIZE  # the contract's cap on members per request (one definition: outbound.policy)


class Connection(models.Model):
    """Where a sync delivers: a webhook URL with its credentials and payload format."""

    class Format(models.TextChoices):
        MIXPANEL = "mixpanel", "Mixpanel cohort webhook"
        AMPLITUDE = "amplitude", "Amplitude cohort webhook"
        TEMPLATE = "template", "Custom template"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="connections")
    name = models.CharField(max_length=200)
    url = models.URLField(max_length=2000)
    auth_username = models.CharField("Basic Auth username", max_length=200, blank=True, default="")
    # Secrets: encrypted at rest, write-only in every interface.
    auth_password = EncryptedTextField("Basic Auth password", blank=True, default="")
    api_key = EncryptedTextField("API key (sent as x-api-key)", blank=True, default="")
    # Values encrypted like the other secrets (receivers authenticate with them); names stay readable.
    headers = EncryptedHeadersField("custom headers", default=dict, blank=True)
    format = models.CharField(max_length=20, choices=Format.choices, default=Format.MIXPANEL)
    body_template = models.TextField(
        blank=True, default="", help_text="For the custom template format: the body, over the `input` object."
    )
    content_type = models.CharField(max_length=100, default="application/json")
    page_size = models.PositiveSmallIntegerField(
        default=MAX_PAGE_SIZE, validators=[MinValueValidator(1), MaxValueValidator(MAX_PAGE_SIZE)],
        help_text=f"Members per request, 1 to {MAX_PAGE_SIZE}.",
    )
    # Per-receiver limits (outbound.limits), shared by every sync, message and alert on this connection,
    # honoured across every worker process and machine. Empty: no limit.
    max_requests_per_second = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(MIN_REQUESTS_PER_SECOND),
                                           MaxValueValidator(MAX_REQUESTS_PER_SECOND)],
        help_text="At most this many requests per second to this receiver, across all workers (e.g. 0.5 or 20).")
    max_concurrent_runs = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(MAX_CONCURRENT_RUNS)],
        help_text="At most this many sync or message runs sending to this receiver at once.")
    # Standard Webhooks signing: shown once when generated; the previous secret keeps
    # signing beside the new one until the rotation's overlap ends.
    signing_secret = EncryptedTextField(blank=True, default="")
    previous_signing_secret = EncryptedTextField(blank=True, default="")
    previous_signing_secret_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(page_size__gte=1) & models.Q(page_size__lte=MAX_PAGE_SIZE),
                name="connection_page_size_bounds",
            ),
            models.CheckConstraint(
                condition=models.Q(max_requests_per_second__isnull=True)
                | models.Q(max_requests_per_second__gte=MIN_REQUESTS_PER_SECOND),
                name="connection_request_rate_positive",
            ),
            models.CheckConstraint(
                condition=models.Q(max_concurrent_runs__isnull=True) | models.Q(max_concurrent_runs__gte=1),
                name="connection_concurrent_runs_positive",
            ),
        ]

    # Set by connection_update (never stored): the secrets a changed destination dropped.
    dropped_secrets: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        validate_destination_url(self.url)
        validate_custom_headers(self.headers, has_api_key=self.has_api_key)
        validate_content_type(self.content_type)
        if self.has_password and not self.auth_username:
            raise ValidationError({"auth_username": "A Basic Auth password needs a username."})
        if self.format == self.Format.TEMPLATE:
            if not self.body_template.strip():
                raise ValidationError({"body_template": "The custom template format needs a template."})
            # The wire formats (integrations.payloads), imported when a template is checked.
            from .payloads import template_samples
            from .templating import validate_template

            samples = template_samples(page_size=min(self.page_size or MAX_PAGE_SIZE, MAX_PAGE_SIZE))
            validate_template(self.body_template, content_type=self.content_type, sample_inputs=samples)

    @property
    def active_signing_secrets(self) -> tuple[str, ...]:
        """Secrets that sign requests now: the current one, and the previous during its overlap."""
        secrets = [self.signing_secret] if self.signing_secret else []
        if self.previous_signing_secret and self.previous_signing_secret_expires_at and (
            self.previous_signing_secret_expires_at > timezone.now()
        ):
            secrets.append(self.previous_signing_secret)
        return tuple(secrets)

    # Reads that only say whether a secret is set never decrypt it.
    @property
    def has_password(self) -> bool:
        return bool(stored_value(self, "auth_password"))

    @property
    def has_api_key(self) -> bool:
        return bool(stored_value(self, "api_key"))

    @property
    def has_signing_secret(self) -> bool:
        return bool(stored_value(self, "signing_secret"))

    @property
    def header_names(self) -> dict[str, bool]:
        """Each custom header's name and whether it has a value (values are write-only)."""
        return {name: bool(value) for name, value in (stored_value(self, "headers") or {}).items()}


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
