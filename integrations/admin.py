from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse

from outbound.admin import ServiceSavedAdmin

from . import services
from .models import MAX_PAGE_SIZE, Connection, ReceivedWebhook
from .send_test import connection_send_test
from .services import connection_disable_signing, connection_rotate_signing_secret
from .templating import PRESETS
from .validation import MAX_CUSTOM_HEADERS


class ConnectionAdminForm(forms.ModelForm):
    """Secrets are write-only: the form never renders a stored one, and blank keeps it. What was
    typed is rendered back after a validation error, so it need not be typed again."""

    auth_password = forms.CharField(
        label="Basic Auth password", required=False, widget=forms.PasswordInput(render_value=True),
        help_text="Leave blank to keep the current password. Tick “clear” below to remove it.",
    )
    api_key = forms.CharField(
        label="API key (sent as x-api-key)", required=False, widget=forms.PasswordInput(render_value=True),
        help_text="Leave blank to keep the current key.",
    )
    url = forms.URLField(max_length=2000, assume_scheme="https", widget=forms.URLInput(attrs={"class": "vURLField"}))
    headers = forms.JSONField(
        label="Custom headers", required=False,
        widget=forms.Textarea(attrs={"rows": MAX_CUSTOM_HEADERS + 2, "cols": 60,
                                     "placeholder": '{"X-Team": "growth", "X-Source": "cohortsync"}'}),
        help_text=f"A JSON object of header name → value; at most {MAX_CUSTOM_HEADERS} headers. The headers "
                  "Cohortsync sets itself (Content-Type, User-Agent, Authorization, webhook-id, …, and x-api-key "
                  "when an API key is stored) cannot be overridden.",
    )
    clear_auth_password = forms.BooleanField(label="Clear the stored password", required=False)
    clear_api_key = forms.BooleanField(label="Clear the stored API key", required=False)
    # Optional in the form: left out, they keep the model's defaults.
    content_type = forms.CharField(required=False, max_length=100, help_text="Default application/json.")
    page_size = forms.IntegerField(required=False, min_value=1, max_value=MAX_PAGE_SIZE,
                                   help_text=f"Members per request, 1 to {MAX_PAGE_SIZE} (default {MAX_PAGE_SIZE}).")
    body_template = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 14, "cols": 80, "spellcheck": "false"}),
        help_text="For the custom template format: a Jinja2 template over `input` (cohort_name, cohort_id, in_cohort, "
                  "computed_time, message_id, users[].user_id, users[].user_properties, action, session_id, "
                  "page_count, total_pages). Use the `json` filter for values. Presets: "
                  + ", ".join(PRESETS) + " (see docs/receiving.md).",
    )

    class Meta:
        model = Connection
        fields = ["project", "name", "url", "format", "body_template", "content_type", "page_size", "auth_username",
                  "auth_password", "clear_auth_password", "api_key", "clear_api_key", "headers"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._stored = {"auth_password": self.instance.auth_password, "api_key": self.instance.api_key}
        for name in self._stored:
            self.initial[name] = ""  # rendered: only what was typed, never the stored secret
            if self.instance.pk is None:  # nothing stored yet to keep
                self.fields[name].help_text = "Optional."

    def _clean_secret(self, field: str) -> str:
        if self.data.get(f"clear_{field}"):
            return ""
        return self.cleaned_data.get(field) or self._stored[field]

    def clean_auth_password(self):
        return self._clean_secret("auth_password")

    def clean_api_key(self):
        return self._clean_secret("api_key")

    def clean_headers(self):
        return self.cleaned_data.get("headers") or {}

    def clean_content_type(self):
        return self.cleaned_data.get("content_type") or "application/json"

    def clean_page_size(self):
        return self.cleaned_data.get("page_size") or MAX_PAGE_SIZE


@admin.register(Connection)
class ConnectionAdmin(ServiceSavedAdmin):
    form = ConnectionAdminForm
    list_display = ["name", "project", "url", "format", "has_password", "has_api_key", "signed", "updated_at"]
    list_filter = ["format", "project"]
    list_select_related = ["project"]
    search_fields = ["name", "url"]
    actions = ["send_test", "rotate_signing_secret", "disable_signing"]

    @admin.action(description="Generate or rotate the signing secret (old one kept 24 h)")
    def rotate_signing_secret(self, request, queryset):
        for connection in queryset:
            secret = connection_rotate_signing_secret(connection=connection, overlap_hours=24)
            # Shown once: it is stored encrypted and no page shows it again.
            messages.warning(request, f"New signing secret for “{connection.name}” (copy it now, it is not shown "
                                      f"again): {secret}")

    @admin.action(description="Turn off request signing")
    def disable_signing(self, request, queryset):
        for connection in queryset:
            connection_disable_signing(connection=connection)
        messages.info(request, f"Signing turned off for {queryset.count()} connection(s).")

    @admin.display(boolean=True, description="signed")
    def signed(self, obj):
        return bool(obj.signing_secret)
    change_form_template = "admin/integrations/connection/change_form.html"

    def get_urls(self):
        send_test = self.admin_site.admin_view(self.send_test_view)
        return [path("<int:connection_id>/send-test/", send_test, name="integrations_connection_send_test"),
                *super().get_urls()]

    def send_test_view(self, request, connection_id: int):
        """The change page's "Send a test page" button (a POST: it sends a request out)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        connection = get_object_or_404(Connection, pk=connection_id)
        if not self.has_change_permission(request, connection):
            return HttpResponseRedirect(reverse("admin:index"))
        self._send_test(request, connection)
        return HttpResponseRedirect(reverse("admin:integrations_connection_change", args=[connection.pk]))

    @admin.action(description="Send a test page (an empty add_members)")
    def send_test(self, request, queryset):
        for connection in queryset:
            self._send_test(request, connection)

    def _send_test(self, request, connection: Connection) -> None:
        result = connection_send_test(connection=connection)
        status = f"HTTP {result.http_status}" if result.http_status else "no HTTP answer"
        text = f"Test page to “{connection.name}”: {result.outcome}, {status} in {result.latency_ms} ms."
        if result.message:
            text += f" {result.message}."
        if result.response_excerpt:
            text += f" The receiver answered: {result.response_excerpt}"
        messages.add_message(request, messages.SUCCESS if result.outcome == "success" else messages.ERROR, text)

    def save_model(self, request, obj, form, change):
        # Through the services, as the API does: what they check and imply holds here too.
        fields = {name: form.cleaned_data[name] for name in form._meta.fields
                  if name in form.cleaned_data and not name.startswith("clear_")}
        if change:
            saved = services.connection_update(connection=Connection.objects.get(pk=obj.pk), **fields)
        else:
            saved = services.connection_create(**fields)
        # The admin goes on with `obj` (history entry, redirect): make it the saved connection.
        vars(obj).update(vars(saved))

    @admin.display(boolean=True, description="password set")
    def has_password(self, obj):
        return obj.has_password

    @admin.display(boolean=True, description="API key set")
    def has_api_key(self, obj):
        return obj.has_api_key


@admin.register(ReceivedWebhook)
class ReceivedWebhookAdmin(admin.ModelAdmin):
    list_display = ["received_at", "inbox", "action", "session_id", "page_id"]
    list_filter = ["inbox", "action"]
    readonly_fields = ["inbox", "received_at", "headers", "body", "action", "session_id", "page_id"]
