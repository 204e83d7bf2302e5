from django.contrib import admin
from django.core.paginator import Paginator
from django.utils.functional import cached_property

from .models import Cohort, Event, Profile, Project
from .selectors import cohort_member_count


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "id", "created_at"]
    filter_horizontal = ["members"]


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ["distinct_id", "email", "first_name", "last_name", "project"]
    list_filter = ["project"]
    search_fields = ["distinct_id", "email"]
    show_full_result_count = False


@admin.register(Cohort)
class CohortAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "kind", "member_count", "updated_at"]
    list_filter = ["project", "kind"]
    readonly_fields = ["member_count"]

    @admin.display(description="members")
    def member_count(self, obj):
        return cohort_member_count(cohort=obj)


class CappedCountPaginator(Paginator):
    """Counts at most COUNT_CAP rows: COUNT(*) over a large events table takes seconds, and
    show_full_result_count=False only spares the unfiltered total, not the page count."""

    COUNT_CAP = 10_000

    @cached_property
    def count(self) -> int:
        return self.object_list[: self.COUNT_CAP].count()


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    """Read-only: events come in through the ingestion services."""

    list_display = ["time", "name", "distinct_id", "project"]
    list_filter = ["project"]
    list_select_related = ["project"]
    ordering = ["-time"]  # the event_time index
    paginator = CappedCountPaginator
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
