"""Every POST try across sync runs, message runs and alert firings: the attempts list, and
the inline each source's change page shows. Read-only."""

from django.contrib import admin, messages
from django.contrib.contenttypes.admin import GenericTabularInline
from django.contrib.contenttypes.models import ContentType
from django.contrib.contenttypes.prefetch import GenericPrefetch
from django.core.paginator import Paginator
from django.db.models import Q
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.text import Truncator

from . import policy
from .health import ACTIVE, PAUSED, health_of
from .models import DeliveryAttempt
from .sources import SOURCES, attempt_source_for

# The health badges of syncs and messages in their admin lists.
STATE_COLOURS = {"paused": "#b3261e", "failing": "#8a4b00", "active": "#15803d", "finished": "#4b5563"}


class CappedCountPaginator(Paginator):
    """Counts at most COUNT_CAP rows: COUNT(*) over a large events table takes seconds, and
    show_full_result_count=False only spares the unfiltered total, not the page count."""

    COUNT_CAP = 10_000

    @cached_property
    def count(self) -> int:
        return self.object_list[: self.COUNT_CAP].count()


class DeliveryAttemptInline(GenericTabularInline):
    model = DeliveryAttempt
    ct_field = "source_kind"
    ct_fk_field = "source_id"
    extra = 0
    can_delete = False
    fields = ["page_number", "action", "attempt_number", "outcome", "http_status", "latency_ms", "error",
              "response_excerpt"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


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
    """What an attempt delivered: a sync page, a message batch or an alert (its source kind)."""

    title = "source"
    parameter_name = "source"

    def lookups(self, request, model_admin):
        return [(source.key, source.title) for source in SOURCES.values()]

    def queryset(self, request, queryset):
        if self.value() in SOURCES:
            return queryset.filter(source_kind=ContentType.objects.get_for_model(SOURCES[self.value()].model))
        return queryset


def attempts_of_member_projects(user) -> Q:
    """Attempts whose source belongs to a project `user` is a member of (the admin's tenancy,
    cohorts.admin_scope, applied through the sources' declared project paths)."""
    condition = Q(pk__in=[])
    for source in SOURCES.values():
        kind = ContentType.objects.get_for_model(source.model)
        of_member = source.model.objects.filter(**{f"{source.project_path}__members": user}).values("pk")
        condition |= Q(source_kind=kind, source_id__in=of_member)
    return condition


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(admin.ModelAdmin):
    """Every POST try across sync runs, message runs and alert firings, newest first: where an
    operator finds trouble. Read-only."""

    list_display = ["created_at", "source_link", "page", "outcome", "http_status", "latency", "short_error"]
    list_filter = [OutcomeFilter, SourceFilter]
    ordering = ["-id"]
    sortable_by = []
    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    readonly_fields = [f.name for f in DeliveryAttempt._meta.fields]

    def get_queryset(self, request):
        # A page's sources come in one query per kind, with what their labels need.
        querysets = [source.model.objects.select_related(*source.select_related) for source in SOURCES.values()]
        attempts = super().get_queryset(request).prefetch_related(GenericPrefetch("source", querysets))
        if request.user.is_superuser:
            return attempts
        return attempts.filter(attempts_of_member_projects(request.user))

    @admin.display(description="source")
    def source_link(self, obj):
        source = obj.source
        registered = attempt_source_for(type(source)) if source is not None else None
        if registered is None:
            return "–"
        meta = source._meta
        url = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[source.pk])
        return format_html('<a href="{}">{}</a>&nbsp;{}', url, registered.label(source),
                           source.get_status_display().lower())

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


class RunSubjectAdmin(admin.ModelAdmin):
    """What the admin lists of syncs and messages share: health badge, the receiver's last
    refusal, a link to the runs, and the run / pause / resume actions.

    A subclass names its things (`noun`, `runs_changelist`, `runs_filter`) and says how to
    act on one subject through its services (`acts`: "run", "pause", "resume").
    """

    noun = "subject"
    runs_changelist = ""  # e.g. "admin:deliveries_syncrun_changelist"
    runs_filter = ""  # e.g. "sync__id__exact"
    not_run_states = "paused"  # how the "not run" warning names what it skipped
    resumed_note = ""
    acts: dict = {}  # "run" / "pause" / "resume" → a function of one subject

    def _act(self, queryset, state: str, act: str) -> int:
        chosen = list(queryset.filter(state=state))
        for obj in chosen:
            self.acts[act](obj)
        return len(chosen)

    @admin.display(description="state", ordering="state")
    def state_badge(self, obj):
        health = health_of(obj)
        return format_html('<strong style="color: {}">{}</strong>', STATE_COLOURS.get(health, "inherit"), health)

    @admin.display(description="last error (receiver's message)")
    def error(self, obj):
        if not obj.last_error_message:
            return ""
        status = f"HTTP {obj.last_error_status}: " if obj.last_error_status else ""
        return status + Truncator(obj.last_error_message).chars(120)

    @admin.display(description="runs")
    def runs_link(self, obj):
        return format_html('<a href="{}?{}={}">runs</a>', reverse(self.runs_changelist), self.runs_filter, obj.pk)

    @admin.action(description="Run now")
    def run_now(self, request, queryset):
        messages.info(request, f"Queued {self._act(queryset, ACTIVE, 'run')} run(s).")
        if skipped := queryset.exclude(state=ACTIVE).count():
            messages.warning(request, f"{skipped} {self.not_run_states} {self.noun}(s) not run: resume them first.")

    @admin.action(description="Pause")
    def pause(self, request, queryset):
        messages.info(request, f"Paused {self._act(queryset, ACTIVE, 'pause')} {self.noun}(s).")

    @admin.action(description="Resume")
    def resume(self, request, queryset):
        messages.info(request, f"Resumed {self._act(queryset, PAUSED, 'resume')} {self.noun}(s){self.resumed_note}.")
