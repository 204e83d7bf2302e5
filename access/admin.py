from django.contrib import admin, messages
from django.template.response import TemplateResponse

from cohorts.admin_scope import ProjectScopedAdmin

from .models import ApiKey
from .services import api_key_create, api_key_revoke


@admin.register(ApiKey)
class ApiKeyAdmin(ProjectScopedAdmin, admin.ModelAdmin):
    """Adding a key shows it once, on the page that answers the save; only its hash is kept."""

    list_display = ["name", "project", "prefix", "is_active", "created_by", "created_at", "last_used_at",
                    "revoked_at"]
    list_filter = ["project", ("revoked_at", admin.EmptyFieldListFilter)]
    list_select_related = ["project", "created_by"]
    search_fields = ["name", "prefix"]
    readonly_fields = ["prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["project", "name"]
        return ["project", "name", *self.readonly_fields]

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is None else ["project", *self.readonly_fields]

    @admin.display(boolean=True, description="active")
    def is_active(self, obj: ApiKey) -> bool:
        return not obj.is_revoked

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        created, key = api_key_create(project=obj.project, name=obj.name, created_by=request.user)
        # The admin goes on with `obj` (change log, redirect): make it the key just created.
        obj.pk = created.pk
        obj.refresh_from_db()
        obj._state.adding = False
        request._api_key_plaintext = key  # for response_add only; never stored

    def response_add(self, request, obj, post_url_continue=None):
        key = getattr(request, "_api_key_plaintext", None)
        if key is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "api_key": obj,
            "key": key,
            "title": "API key created",
        }
        return TemplateResponse(request, "admin/access/apikey/created.html", context)

    @admin.action(description="Revoke the selected keys (requests with them are refused at once)")
    def revoke(self, request, queryset):
        revoked = 0
        for api_key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(api_key=api_key)
            revoked += 1
        messages.success(request, f"Revoked {revoked} key(s).")
