"""The operators' screens for syncs, runs, attempts and notifications.

Runs and attempts grow to hundreds of thousands of rows: their lists order by an index, never
count more than CappedCountPaginator.COUNT_CAP rows, and filter on fixed choices (no
DISTINCT over the table to build a filter's options).
"""

from django import forms
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from cohorts.admin_scope import ProjectScopedAdmin
from outbound.admin import DeliveryAttemptInline, LargeListAdmin, RunSubjectAdmin
from outbound.health import ATTENTION

from . import services
from .models import Notification, Sync, SyncRun


class AttentionFilter(admin.SimpleListFilter):
    """Paused syncs and syncs whose last run failed: what an operator looks at first."""

    title = "attention"
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return [("paused", "Paused"), ("failing", "Failing (not paused)"), ("any", "Paused or failing")]

    def queryset(self, request, queryset):
        return {
            "paused": queryset.filter(state=Sync.State.PAUSED),
            "failing": queryset.failing(),
            "any": queryset.needing_attention(),
        }.get(self.value(), queryset)


class SyncAdminForm(forms.ModelForm):
    class Meta:
        model = Sync
        fields = ["cohort", "connection", "mode", "interval_minutes", "properties", "notify_users",
                  "auto_pause_failed_runs", "auto_pause_hours"]
        help_texts = {"properties": 'A JSON list of profile property names sent with each member, e.g. ["plan"].'}

    def clean_properties(self) -> list:
        return self.cleaned_data.get("properties") or []  # an emptied field: no properties


@admin.register(Sync)
class SyncAdmin(ProjectScopedAdmin, RunSubjectAdmin):
    """Add and change go through sync_create / sync_update (a new sync is due at once); what
    runs keep up to date (state, schedule, snapshot, claim, last error) is read-only here and
    changes through the actions, which go through the state services."""

    project_paths = ("cohort__project",)
    form = SyncAdminForm
    noun = "sync"
    runs_changelist = "admin:deliveries_syncrun_changelist"
    runs_filter = "sync__id__exact"
    resumed_note = "; paused ones run within a minute"
    acts = {"run": lambda sync: services.sync_request_run(sync=sync), "resume": lambda sync: services.sync_resume(sync=sync),
            "pause": lambda sync: services.sync_pause(sync=sync, message="paused by an operator", status=None, notify=False),
            "full_refresh": lambda sync: services.sync_request_full_refresh(sync=sync)}
    list_display = ["id", "state_badge", "cohort", "connection", "mode", "error", "last_success", "next_run_at",
                    "runs_link"]
    list_display_links = ["id", "state_badge"]
    list_filter = [AttentionFilter, "state", "mode"]
    list_select_related = ["cohort", "connection"]
    search_fields = ["cohort__name", "connection__name"]
    # Paused first, then failing, then the rest, newest first within each (outbound.health).
    ordering = [ATTENTION.asc(), "-id"]
    fieldsets = [
        (None, {"fields": ["cohort", "connection", "mode", "interval_minutes", "properties", "notify_users"]}),
        ("Auto-pause (empty: the settings' defaults; 0: off)", {"fields": ["auto_pause_failed_runs", "auto_pause_hours"]}),
    ]
    status_fields = ["state", "status_page", "next_run_at", "force_full", "paused_at", "last_error_message",
                     "last_error_status", "consecutive_failed_runs", "failing_since", "snapshot_at", "snapshot_size",
                     "snapshot_generation", "claimed_until", "created_by", "created_at", "updated_at"]
    readonly_fields = status_fields
    filter_horizontal = ["notify_users"]
    actions = ["run_now", "pause", "resume", "full_refresh"]

    def get_fieldsets(self, request, obj=None):
        return [*self.fieldsets, ("Status", {"fields": self.status_fields})] if obj else self.fieldsets

    def get_readonly_fields(self, request, obj=None):
        # sync_update keeps a sync's cohort and mode (see services.SYNC_EDITABLE_FIELDS).
        return [*self.readonly_fields, "cohort", "mode"] if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            fields = {name: data[name] for name in services.SYNC_EDITABLE_FIELDS if name in data}
            # A fresh copy: sync_update writes only what changed, compared with what is stored.
            saved = services.sync_update(sync=Sync.objects.get(pk=obj.pk), **fields)
        else:
            saved = services.sync_create(
                cohort=data["cohort"], connection=data["connection"], mode=data["mode"],
                interval_minutes=data["interval_minutes"], properties=data["properties"],
                notify_users=data.get("notify_users") or (), created_by=request.user,
            )
            limits = {name: data[name] for name in ("auto_pause_failed_runs", "auto_pause_hours")
                      if data.get(name) is not None}
            if limits:
                saved = services.sync_set_auto_pause(sync=saved, **limits)
        # The admin goes on with `obj` (history entry, redirect): make it the saved sync.
        vars(obj).update(vars(saved))

    def save_related(self, request, form, formsets, change):
        # The services set notify_users; only inline formsets are left to save.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    @admin.display(description="last success", ordering="snapshot_at")
    def last_success(self, obj):
        return obj.snapshot_at

    @admin.display(description="status page")
    def status_page(self, obj):
        if obj.pk is None:
            return "–"
        url = reverse("deliveries:sync_detail", kwargs={"sync_id": obj.pk})
        return format_html('<a href="{}">{}</a>', url, url)

    @admin.action(description="Full refresh on the next run")
    def full_refresh(self, request, queryset):
        self._act(request, queryset, "full_refresh", done="The next run of {count} sync(s) sends the whole cohort.",
                  refused="not refreshed")


@admin.register(SyncRun)
class SyncRunAdmin(ProjectScopedAdmin, LargeListAdmin):
    project_paths = ("sync__cohort__project",)
    list_display = ["started_at", "sync", "kind", "status", "pages", "sent", "error"]
    list_display_links = ["started_at"]
    list_filter = ["status", "kind"]  # choices: no query to list the options
    list_select_related = ["sync__cohort", "sync__connection"]
    ordering = ["-started_at", "-id"]  # the run_recent and run_status_recent indexes
    sortable_by = ["started_at"]  # sorting 100,000 runs by an unindexed column would scan them all
    inlines = [DeliveryAttemptInline]

    @admin.display(description="pages")
    def pages(self, obj):
        return f"{obj.pages_delivered}/{obj.total_pages}"

    @admin.display(description="sent")
    def sent(self, obj):
        if obj.kind == SyncRun.Kind.FULL:
            return f"{obj.members_count} members"
        return f"+{obj.adds_count} −{obj.removes_count}" if obj.kind else "–"

    def has_add_permission(self, request):
        return False

    @admin.display(description="error")
    def error(self, obj):
        status = f"HTTP {obj.http_status}: " if obj.http_status and obj.error_message else ""
        return status + Truncator(obj.error_message).chars(100)


@admin.register(Notification)
class NotificationAdmin(ProjectScopedAdmin, admin.ModelAdmin):
    """Every email sent about a sync: to whom, which sync, why, when (read-only)."""

    project_paths = ("sync__cohort__project",)
    list_display = ["sent_at", "recipient", "sync", "reason", "subject", "delivered", "error"]
    list_filter = ["reason", "delivered"]
    list_select_related = ["sync__cohort", "sync__connection"]
    search_fields = ["recipient", "subject"]
    readonly_fields = [f.name for f in Notification._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
