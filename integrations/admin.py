from django import forms
from django.contrib import admin

from .models import Connection, ReceivedWebhook


class ConnectionAdminForm(forms.ModelForm):
    """Secrets are write-only: the form never renders them, and blank keeps the stored one."""

    auth_password = forms.CharField(
        label="Basic Auth password", required=False, widget=forms.PasswordInput(render_value=False),
        help_text="Leave blank to keep the current password. Tick “clear” below to remove it.",
    )
    api_key = forms.CharField(
        label="API key (sent as x-api-key)", required=False, widget=forms.PasswordInput(render_value=False),
        help_text="Leave blank to keep the current key.",
    )
    url = forms.URLField(max_length=2000, assume_scheme="https")
    clear_auth_password = forms.BooleanField(label="Clear the stored password", required=False)
    clear_api_key = forms.BooleanField(label="Clear the stored API key", required=False)

    class Meta:
        model = Connection
        fields = ["project", "name", "url", "format", "auth_username", "auth_password", "clear_auth_password", "api_key",
                  "clear_api_key", "headers"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._stored = {"auth_password": self.instance.auth_password, "api_key": self.instance.api_key}

    def _clean_secret(self, field: str) -> str:
        if self.data.get(f"clear_{field}"):
            return ""
        return self.cleaned_data.get(field) or self._stored[field]

    def clean_auth_password(self):
        return self._clean_secret("auth_password")

    def clean_api_key(self):
        return self._clean_secret("api_key")


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    form = ConnectionAdminForm
    list_display = ["name", "project", "url", "format", "has_password", "has_api_key", "updated_at"]
    list_filter = ["format", "project"]
    search_fields = ["name", "url"]

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
