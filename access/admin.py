from django.contrib import admin, messages
from django.template.response import TemplateResponse

from cohorts.admin_scope import ProjectScopedAdmin

from .models import ApiKey, HashedKey
from .services import api_key_create, hashed_key_revoke


class HashedKeyAdmin(admin.ModelAdmin):
    """A HashedKey's admin. Adding a key shows it once, on the page that answers the save; only its
    hash is kept. Subclasses say which fields a new key takes and how it is made (`key_create`)."""

    creation_fields: list[str] = ["project", "name"]  # all but the name are fixed once the key exists
    created_template: str  # extends admin/access/hashed_key_created.html: says how to use the key
    list_select_related = ["project", "created_by"]
    search_fields = ["name", "prefix"]
    readonly_fields = ["prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def key_create(self, request, obj: HashedKey) -> tuple[HashedKey, str]:
        """Issue the key the add form describes (`obj`, not saved); returns it and its plaintext."""
        raise NotImplementedError

    def key_label(self, obj: HashedKey) -> str:
        return str(self.opts.verbose_name)

    def get_fields(self, request, obj=None):
        return list(self.creation_fields) if obj is None else [*self.creation_fields, *self.readonly_fields]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return self.readonly_fields
        return [*(name for name in self.creation_fields if name != "name"), *self.readonly_fields]

    @admin.display(boolean=True, description="active")
    def is_active(self, obj: HashedKey) -> bool:
        return not obj.is_revoked

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        created, key = self.key_create(request, obj)
        # The admin goes on with `obj` (change log, redirect): make it the key just created.
        obj.pk = created.pk
        obj.refresh_from_db()
        obj._state.adding = False
        request._hashed_key_plaintext = key  # for response_add only; never stored

    def response_add(self, request, obj, post_url_continue=None):
        key = getattr(request, "_hashed_key_plaintext", None)
        if key is None:
            return super().response_add(request, obj, post_url_continue)
        label = self.key_label(obj)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "hashed_key": obj,
            "key": key,
            "label": label,
            "title": f"{label} created",
        }
        return TemplateResponse(request, self.created_template, context)

    @admin.action(description="Revoke the selected keys (requests with them are refused at once)")
    def revoke(self, request, queryset):
        revoked = 0
        for hashed_key in queryset.filter(revoked_at__isnull=True):
            hashed_key_revoke(hashed_key=hashed_key)
            revoked += 1
        messages.success(request, f"Revoked {revoked} key(s).")


@admin.register(ApiKey)
class ApiKeyAdmin(ProjectScopedAdmin, HashedKeyAdmin):
    list_display = ["name", "project", "prefix", "is_active", "created_by", "created_at", "last_used_at",
                    "revoked_at"]
    list_filter = ["project", ("revoked_at", admin.EmptyFieldListFilter)]
    created_template = "admin/access/apikey/created.html"

    def key_create(self, request, obj: ApiKey) -> tuple[ApiKey, str]:
        return api_key_create(project=obj.project, name=obj.name, created_by=request.user)
