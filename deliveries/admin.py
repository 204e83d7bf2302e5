"""The operators' screens for syncs, runs, attempts and notifications.

Runs and attempts grow to hundreds of thousands of rows: their lists order by an index, never
count more than CappedCountPaginator.COUNT_CAP rows, and filter on fixed choices (no
DISTINCT over the table to build a filter's options).
"""

from django.contrib import admin, messages
from django.db.models import Case, Q, Value, When
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from cohorts.admin import CappedCountPaginator

from . import policy, services
from .dispatch import BrokerUnavailable
from .models import DeliveryAttempt, Notification, Sync, SyncRun

STATE_COLOURS = {"paused": "#b3261e", "failing": "#8a4b00", "active": "#15803d", "finished": "#4b5563"}


class AttentionFilter(admin.SimpleListFilter):
    """Paused syncs and syncs whose last run failed: what an operator looks at first."""

    title = "attention"
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return [("paused", "Paused"), ("failing", "Failing (not paused)"), ("any", "Paused or failing")]

    def queryset(self, request, queryset):
        failing = Q(state=Sync.State.ACTIVE) & ~Q(last_error_message="")
        return {
            "paused": queryset.filter(state=Sync.State.PAUSED),
            "failing": queryset.filter(failing),
            "any": queryset.filter(Q(state=Sync.State.PAUSED) | failing),
        }.get(self.value(), queryset)


@admin.register(Sync)
class SyncAdmin(admin.ModelAdmin):
    list_display = ["id", "state_badge", "cohort", "connection", "mode", "error", "last_success", "next_run_at",
                    "runs_link"]
    list_display_links = ["id", "state_badge"]
    list_filter = [AttentionFilter, "state", "mode"]
    list_select_related = ["cohort", "connection"]
    search_fields = ["cohort__name", "connection__name"]
    # Paused first, then failing, then the rest, newest first within each.
    ordering = [
        Case(When(state=Sync.State.PAUSED, then=Value(0)), When(~Q(last_error_message=""), then=Value(1)),
             default=Value(2)).asc(),
        "-id",
    ]
    readonly_fields = ["snapshot_at", "snapshot_size", "claimed_until", "paused_at", "last_error_message",
                       "last_error_status", "status_page"]
    filter_horizontal = ["notify_users"]
    actions = ["run_now", "pause", "resume", "full_refresh"]

    @admin.display(description="state", ordering="state")
    def state_badge(self, obj):
        health = "failing" if obj.state == Sync.State.ACTIVE and obj.last_error_message else obj.state
        label = "failing" if health == "failing" else obj.get_state_display().lower()
        return format_html('<strong style="color: {}">{}</strong>', STATE_COLOURS.get(health, "inherit"), label)

    @admin.display(description="last error (receiver's message)")
    def error(self, obj):
        if not obj.last_error_message:
            return ""
        status = f"HTTP {obj.last_error_status}: " if obj.last_error_status else ""
        return status + Truncator(obj.last_error_message).chars(120)

    @admin.display(description="last success", ordering="snapshot_at")
    def last_success(self, obj):
        return obj.snapshot_at

    @admin.display(description="runs")
    def runs_link(self, obj):
        return format_html('<a href="{}?sync__id__exact={}">runs</a>', reverse("admin:deliveries_syncrun_changelist"),
                           obj.pk)

    @admin.display(description="status page")
    def status_page(self, obj):
        if obj.pk is None:
            return "–"
        url = reverse("deliveries:sync", kwargs={"sync_id": obj.pk})
        return format_html('<a href="{}">{}</a>', url, url)

    @admin.action(description="Run now")
    def run_now(self, request, queryset):
        active = list(queryset.filter(state=Sync.State.ACTIVE))
        try:
            for sync in active:
                services.sync_request_run(sync=sync)
        except BrokerUnavailable as exc:
            messages.error(request, f"Not every run was queued: {exc}.")
            return
        messages.info(request, f"Queued {len(active)} run(s).")
        if skipped := queryset.exclude(state=Sync.State.ACTIVE).count():
            messages.warning(request, f"{skipped} paused or finished sync(s) not run: resume them first.")

    @admin.action(description="Pause")
    def pause(self, request, queryset):
        active = list(queryset.filter(state=Sync.State.ACTIVE))
        for sync in active:
            services.sync_pause(sync=sync, message="paused by an operator", status=None, notify=False)
        messages.info(request, f"Paused {len(active)} sync(s).")

    @admin.action(description="Resume")
    def resume(self, request, queryset):
        paused = list(queryset.filter(state=Sync.State.PAUSED))
        for sync in paused:
            services.sync_resume(sync=sync)
        messages.info(request, f"Resumed {len(paused)} sync(s); they run within a minute.")

    @admin.action(description="Full refresh on the next run")
    def full_refresh(self, request, queryset):
        syncs = list(queryset)
        for sync in syncs:
            services.sync_request_full_refresh(sync=sync)
        messages.info(request, f"The next run of {len(syncs)} sync(s) sends the whole cohort.")


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = ["page_number", "action", "attempt_number", "outcome", "http_status", "latency_ms", "error",
              "response_excerpt"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    list_display = ["started_at", "sync", "kind", "status", "pages", "sent", "error"]
    list_display_links = ["started_at"]
    list_filter = ["status", "kind"]  # choices: no query to list the options
    list_select_related = ["sync__cohort", "sync__connection"]
    ordering = ["-started_at", "-id"]  # the run_recent and run_status_recent indexes
    sortable_by = ["started_at"]  # sorting 100,000 runs by an unindexed column would scan them all
    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # a count per filter option is a scan per option
    inlines = [DeliveryAttemptInline]
    readonly_fields = [f.name for f in SyncRun._meta.fields]

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


class OutcomeFilter(admin.SimpleListFilter):
    """Fixed options from the policy, not a DISTINCT over every attempt."""

    title = "outcome"
    parameter_name = "outcome"

    def lookups(self, request, model_admin):
        return [("problems", "Not a success")] + [(o.value, o.value) for o in policy.Outcome]

    def queryset(self, request, queryset):
        if self.value() == "problems":
            return queryset.filter(~Q(outcome=policy.Outcome.SUCCESS))  # the attempt_problems partial index
        if self.value():
            return queryset.filter(outcome=self.value())
        return queryset


class SourceFilter(admin.SimpleListFilter):
    """What an attempt delivered: a sync page, a message batch or an alert (one FK each)."""

    title = "source"
    parameter_name = "source"
    SOURCES = {"sync": "run", "message": "message_run", "alert": "alert_firing"}

    def lookups(self, request, model_admin):
        return [("sync", "Sync runs"), ("message", "User messages"), ("alert", "Alert webhooks")]

    def queryset(self, request, queryset):
        if self.value() in self.SOURCES:
            return queryset.filter(**{f"{self.SOURCES[self.value()]}__isnull": False})
        return queryset


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(admin.ModelAdmin):
    """Every POST try across sync runs, message runs and alert firings, newest first: where an
    operator finds trouble. Read-only."""

    list_display = ["created_at", "source", "page", "outcome", "http_status", "latency", "short_error"]
    list_filter = [OutcomeFilter, SourceFilter]
    # Outer joins to all three sources: each row brings whichever is set, in the page's one query.
    list_select_related = ["run", "message_run__message", "alert_firing__alert"]
    ordering = ["-id"]
    sortable_by = []
    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    readonly_fields = [f.name for f in DeliveryAttempt._meta.fields]

    @admin.display(description="source")
    def source(self, obj):
        if obj.run_id:
            url = reverse("admin:deliveries_syncrun_change", args=[obj.run_id])
            label = f"sync run #{obj.run_id}"
            status = obj.run.get_status_display()
        elif obj.message_run_id:
            url = reverse("admin:campaigns_messagerun_change", args=[obj.message_run_id])
            label = f"message “{obj.message_run.message.name}” run #{obj.message_run_id}"
            status = obj.message_run.get_status_display()
        else:
            url = reverse("admin:alerts_alertfiring_change", args=[obj.alert_firing_id])
            label = f"alert “{obj.alert_firing.alert.name}” firing #{obj.alert_firing_id}"
            status = obj.alert_firing.get_status_display()
        return format_html('<a href="{}">{}</a>&nbsp;{}', url, label, status.lower())

    @admin.display(description="page · try")
    def page(self, obj):
        return f"{obj.page_number} {obj.action} · {obj.attempt_number}"

    @admin.display(description="latency")
    def latency(self, obj):
        return f"{obj.latency_ms} ms"

    @admin.display(description="error")
    def short_error(self, obj):
        return Truncator(obj.error).chars(100)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    """Every email sent about a sync: to whom, which sync, why, when (read-only)."""

    list_display = ["sent_at", "recipient", "sync", "reason", "subject", "delivered", "error"]
    list_filter = ["reason", "delivered"]
    list_select_related = ["sync__cohort", "sync__connection"]
    search_fields = ["recipient", "subject"]
    readonly_fields = [f.name for f in Notification._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
