from django.contrib import admin

from access.admin import HashedKeyAdmin
from cohorts.admin_scope import ProjectScopedAdmin

from .models import IngestKey
from .services import ingest_key_create


@admin.register(IngestKey)
class IngestKeyAdmin(ProjectScopedAdmin, HashedKeyAdmin):
    list_display = ["name", "project", "kind", "prefix", "is_active", "created_by", "created_at", "last_used_at",
                    "revoked_at"]
    list_filter = ["project", "kind", ("revoked_at", admin.EmptyFieldListFilter)]
    creation_fields = ["project", "kind", "name"]
    created_template = "admin/sdk_ingest/ingestkey/created.html"

    def key_create(self, request, obj: IngestKey) -> tuple[IngestKey, str]:
        return ingest_key_create(project=obj.project, kind=obj.kind, name=obj.name, created_by=request.user)

    def key_label(self, obj: IngestKey) -> str:
        return obj.get_kind_display()
