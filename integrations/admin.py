from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect
from django.urls import reverse

from cohorts.admin_scope import ProjectScopedAdmin
from outbound.admin import SendTestButtonAdmin, ServiceSavedAdmin, send_test_message

from . import services
from .fields import UnreadableSecret
from .models import MAX_PAGE_SIZE, Connection, ReceivedWebhook
from .selectors import inboxes_of
from .send_test import connection_send_test
from .services import connection_apply_changes, connection_disable_signing, connection_rotate_signing_secret
from .templating import PRESETS
from .validation import MAX_CUSTOM_HEADERS

# Stands for a stored header value in the form: values are secrets, so the page never shows them.
HEADER_MASK = "********"


class ConnectionAdminForm(forms.ModelForm):
    """Secrets are write-only: the form never renders a stored one, and blank keeps it. What was
    typed is rendered back after a validation error, so it need not be typed again.

    A change goes through connection_apply_changes, so its rules hold here too (a new scheme, host
    or port drops the stored secrets the form does not give again).
    """

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
        help_text=f"A JSON object of header name → value; at most {MAX_CUSTOM_HEADERS} headers. Stored values are "
                  f"secrets and show as {HEADER_MASK!r}: leave that to keep a value. The headers Cohortsync sets "
                  "itself (Content-Type, User-Agent, Authorization, webhook-id, …, and x-api-key "
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
        fields = ["project", "name", "url", "format", "body_template", "content_type", "page_size",
                  "max_requests_per_second", "max_concurrent_runs", "auth_username",
                  "auth_password", "clear_auth_password", "api_key", "clear_api_key", "headers"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("auth_password", "api_key"):
            self.initial[name] = ""  # rendered: only what was typed, never the stored secret
            if self.instance.pk is None:  # nothing stored yet to keep
                self.fields[name].help_text = "Optional."
        if self.instance.pk is not None:
            self.initial["headers"] = {name: HEADER_MASK if has_value else ""
                                       for name, has_value in self.instance.header_names.items()}

    def clean_headers(self):
        headers = self.cleaned_data.get("headers") or {}
        if isinstance(headers, dict):  # the mask keeps the stored value (None, for the service)
            headers = {name: None if value == HEADER_MASK else value for name, value in headers.items()}
        return headers

    def _post_clean(self):
        if self.instance.pk is None:
            super()._post_clean()  # a new connection: the model's full_clean, as connection_create does
            return
        fields = {name: value for name, value in self.cleaned_data.items()
                  if name in self._meta.fields and not name.startswith("clear_")}
        for secret in ("auth_password", "api_key"):
            # Blank keeps the stored secret, so it is given only when typed in or cleared.
            if self.cleaned_data.get(f"clear_{secret}"):
                fields[secret] = ""
            elif not fields.get(secret):
                fields.pop(secret, None)
        try:
            connection_apply_changes(connection=self.instance, **fields)
        except ValidationError as error:
            self._update_errors(error)

    def clean_content_type(self):
        return self.cleaned_data.get("content_type") or "application/json"

    def clean_page_size(self):
        return self.cleaned_data.get("page_size") or MAX_PAGE_SIZE


@admin.register(Connection)
class ConnectionAdmin(ProjectScopedAdmin, SendTestButtonAdmin, ServiceSavedAdmin):
    form = ConnectionAdminForm
    list_display = ["name", "project", "url", "format", "has_password", "has_api_key", "signed", "updated_at"]
    list_filter = ["format", "project"]
    list_select_related = ["project"]
    search_fields = ["name", "url"]
    actions = ["send_test", "rotate_signing_secret", "disable_signing"]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        try:
            return super().change_view(request, object_id, form_url, extra_context)
        except UnreadableSecret as error:  # a key was dropped too soon: say which, not a 500
            messages.error(request, str(error))
            return HttpResponseRedirect(reverse("admin:integrations_connection_changelist"))

    def save_model(self, request, obj, form, change):
        # Through the services, as the API does. A change was already set and checked by
        # connection_apply_changes when the form was cleaned (so a moved URL drops the secrets not
        # typed again, and the form shows any refusal): saving it finishes connection_update.
        if change:
            obj.save()
        else:
            fields = {name: form.cleaned_data[name] for name in form._meta.fields
                      if name in form.cleaned_data and not name.startswith("clear_")}
            # The admin goes on with `obj` (history entry, redirect): make it the saved connection.
            vars(obj).update(vars(services.connection_create(**fields)))
        if getattr(obj, "dropped_secrets", None):
            messages.warning(request, f"The URL now points to another scheme, host or port, so these stored secrets "
                                      f"were dropped: {', '.join(obj.dropped_secrets)}. Enter them again for the "
                                      "new destination.")

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

    @admin.action(description="Send a test page (an empty add_members)")
    def send_test(self, request, queryset):
        for connection in queryset:
            self.send_test_report(request, connection)

    def send_test_report(self, request, connection: Connection) -> None:
        try:
            result = connection_send_test(connection=connection)
        except UnreadableSecret as error:
            messages.error(request, str(error))
            return
        send_test_message(request, title=f"Test page to “{connection.name}”", result=result)

    @admin.display(boolean=True, description="password set")
    def has_password(self, obj):
        return obj.has_password

    @admin.display(boolean=True, description="API key set")
    def has_api_key(self, obj):
        return obj.has_api_key


@admin.register(ReceivedWebhook)
class ReceivedWebhookAdmin(ProjectScopedAdmin, admin.ModelAdmin):
    list_display = ["received_at", "inbox", "action", "session_id", "page_id"]
    list_filter = ["inbox", "action"]
    readonly_fields = ["inbox", "received_at", "headers", "body", "action", "session_id", "page_id"]

    def scope_to_projects(self, queryset, projects):
        return queryset.filter(inbox__in=inboxes_of(projects=projects))
