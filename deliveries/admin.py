from django.contrib import admin, messages

from . import services
from .models import DeliveryAttempt, Notification, Sync, SyncRun


@admin.register(Sync)
class SyncAdmin(admin.ModelAdmin):
    list_display = ["id", "cohort", "connection", "mode", "state", "last_error_message", "snapshot_at", "next_run_at"]
    list_filter = ["state", "mode"]
    list_select_related = ["cohort", "connection"]
    readonly_fields = ["snapshot_at", "snapshot_size", "claimed_until", "paused_at", "last_error_message",
                       "last_error_status"]
    filter_horizontal = ["notify_users"]
    actions = ["run_now", "pause", "resume", "full_refresh"]

    @admin.action(description="Run now")
    def run_now(self, request, queryset):
        for sync in queryset:
            services.sync_request_run(sync=sync)
        messages.info(request, f"Queued {queryset.count()} run(s).")

    @admin.action(description="Pause")
    def pause(self, request, queryset):
        for sync in queryset.filter(state=Sync.State.ACTIVE):
            services.sync_pause(sync=sync, message="paused by an operator", status=None, notify=False)

    @admin.action(description="Resume")
    def resume(self, request, queryset):
        for sync in queryset.filter(state=Sync.State.PAUSED):
            services.sync_resume(sync=sync)

    @admin.action(description="Full refresh on the next run")
    def full_refresh(self, request, queryset):
        for sync in queryset:
            services.sync_request_full_refresh(sync=sync)


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
    list_display = ["session_id", "sync", "kind", "status", "total_pages", "pages_delivered", "members_count",
                    "adds_count", "removes_count", "started_at", "finished_at"]
    list_filter = ["status", "kind"]
    list_select_related = ["sync__cohort", "sync__connection"]
    show_full_result_count = False
    inlines = [DeliveryAttemptInline]
    readonly_fields = [f.name for f in SyncRun._meta.fields]


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["sent_at", "recipient", "sync", "reason", "delivered"]
    list_filter = ["reason", "delivered"]
    readonly_fields = [f.name for f in Notification._meta.fields]
