from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import OuterRef, Subquery
from django.template.loader import render_to_string
from django.utils.html import format_html, format_html_join

from outbound.admin import CappedCountPaginator

from .admin_scope import ProjectScopedAdmin
from .charts import SizePoint, size_chart
from .models import Cohort, CohortSize, Event, Profile, Project
from .selectors import cohort_member_count, cohort_member_profiles, cohort_preview, cohort_size_history

PREVIEW_SIZE = 10
SIZE_HISTORY_ROWS = 10
SIZE_CHART_POINTS = 200


@admin.register(Project)
class ProjectAdmin(ProjectScopedAdmin, admin.ModelAdmin):
    project_paths = ("pk",)
    list_display = ["name", "id", "created_at"]
    filter_horizontal = ["members"]


@admin.register(Profile)
class ProfileAdmin(ProjectScopedAdmin, admin.ModelAdmin):
    list_display = ["distinct_id", "email", "first_name", "last_name", "project"]
    list_filter = ["project"]
    search_fields = ["distinct_id", "email"]
    show_full_result_count = False


@admin.register(Cohort)
class CohortAdmin(ProjectScopedAdmin, admin.ModelAdmin):
    # The list shows the last measured size (one query for the page); the change page counts live.
    list_display = ["name", "project", "kind", "last_size", "updated_at"]
    list_filter = ["project", "kind"]
    list_select_related = ["project"]
    search_fields = ["name"]
    readonly_fields = ["member_count", "preview", "size_history"]

    def get_queryset(self, request):
        latest = CohortSize.objects.filter(cohort=OuterRef("pk")).order_by("-computed_at", "-id")
        return super().get_queryset(request).annotate(
            last_size=Subquery(latest.values("size")[:1]), last_size_at=Subquery(latest.values("computed_at")[:1])
        )

    @admin.display(description="last measured size", ordering="last_size")
    def last_size(self, obj):
        if obj.last_size is None:
            return "–"
        return format_html('{} <span class="quiet">({})</span>', obj.last_size, obj.last_size_at.strftime("%Y-%m-%d %H:%M"))

    @admin.display(description="members now")
    def member_count(self, obj):
        return cohort_member_count(cohort=obj) if obj.pk else "–"

    @admin.display(description=f"preview (first {PREVIEW_SIZE} by distinct id)")
    def preview(self, obj):
        if obj.pk is None:
            return "–"
        if obj.kind == Cohort.Kind.RULES:
            try:
                _, sample = cohort_preview(project_id=obj.project_id, definition=obj.definition, sample_size=PREVIEW_SIZE)
            except ValidationError as error:
                return format_html('<span class="errornote">The definition is invalid: {}</span>', "; ".join(error.messages))
        else:
            sample = cohort_member_profiles(cohort=obj).order_by("distinct_id")[:PREVIEW_SIZE]
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{} {}</td></tr>",
                                ((p.distinct_id, p.email, p.first_name, p.last_name) for p in sample))
        if not rows:
            return "No members."
        return format_html("<table><thead><tr><th>distinct id</th><th>email</th><th>name</th></tr></thead>"
                           "<tbody>{}</tbody></table>", rows)

    @admin.display(description="size history")
    def size_history(self, obj):
        history = list(cohort_size_history(cohort=obj, limit=SIZE_CHART_POINTS)) if obj.pk else []
        if not history:
            return "Not measured yet: each sync run and each count records the size."
        chart = size_chart(points=[SizePoint(at=row.computed_at, size=row.size) for row in history])
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td></tr>",
                                ((row.computed_at.strftime("%Y-%m-%d %H:%M:%S"), row.size)
                                 for row in history[:SIZE_HISTORY_ROWS]))
        return format_html(
            '<div style="width: 40rem; max-width: 100%">{}</div><table><caption>Last {} measurements (UTC)</caption>'
            "<thead><tr><th>measured at</th><th>size</th></tr></thead><tbody>{}</tbody></table>",
            render_to_string("cohorts/size_chart.html", {"chart": chart, "chart_id": f"cohort-{obj.pk}-size"}),
            min(len(history), SIZE_HISTORY_ROWS), rows,
        )


@admin.register(Event)
class EventAdmin(ProjectScopedAdmin, admin.ModelAdmin):
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
