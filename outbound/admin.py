"""Every POST try across sync runs, message runs and alert firings: the attempts list, and
the inline each source's change page shows. Read-only."""

from django.contrib import admin, messages
from django.contrib.contenttypes.admin import GenericTabularInline
from django.contrib.contenttypes.models import ContentType
from django.contrib.contenttypes.prefetch import GenericPrefetch
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.text import Truncator

from . import policy
from .errors import BrokerUnavailable, StateConflict
from .health import health_of
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


class LargeListAdmin(admin.ModelAdmin):
    """A read-only list that grows to hundreds of thousands of rows (runs, attempts, send
    records): newest first by an indexed order, counts capped, no count per filter option (a
    scan per option), no sorting by unindexed columns."""

    ordering = ["-id"]
    sortable_by: list[str] = []
    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]


class SendTestButtonAdmin(admin.ModelAdmin):
    """A change page's test-send button: a POST to `<id>/send-test/` (URL name
    `<app>_<model>_send_test`) that sends through the admin's `send_test_report(request, obj)`,
    then back to the change page. POST only: it sends a request out."""

    def get_urls(self):
        opts = self.model._meta
        view = self.admin_site.admin_view(self.send_test_view)
        return [path("<int:object_id>/send-test/", view, name=f"{opts.app_label}_{opts.model_name}_send_test"),
                *super().get_urls()]

    def send_test_view(self, request, object_id: int):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        obj = get_object_or_404(self.get_queryset(request), pk=object_id)
        if not self.has_change_permission(request, obj):
            return HttpResponseRedirect(reverse("admin:index"))
        self.send_test_report(request, obj)
        opts = self.model._meta
        return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]))

    def send_test_report(self, request, obj) -> None:
        raise NotImplementedError


def send_test_message(request, *, title: str, result, sent: str = "") -> None:
    """A test send's answer as an admin message: success or error as the retry policy took it."""
    status = f"HTTP {result.http_status}" if result.http_status else "no HTTP answer"
    text = f"{title}: {result.outcome}, {status} in {result.latency_ms} ms.{sent}"
    if result.message:
        text += f" {result.message}."
    if result.response_excerpt:
        text += f" The receiver answered: {result.response_excerpt}"
    messages.add_message(request, messages.SUCCESS if result.outcome == "success" else messages.ERROR, text)


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
class DeliveryAttemptAdmin(LargeListAdmin):
    """Every POST try across sync runs, message runs and alert firings, newest first: where an
    operator finds trouble. Read-only."""

    list_display = ["created_at", "source_link", "page", "outcome", "http_status", "latency", "short_error"]
    list_filter = [OutcomeFilter, SourceFilter]

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


class ServiceSavedAdmin(admin.ModelAdmin):
    """An admin whose save_model goes through its app's service: a ValidationError the service
    raises (a check the form did not run, or data that changed meanwhile) comes back as errors
    on the form, like the form's own, instead of a server error.

    The failed save rolls back with the change view's transaction; the view then runs again
    with a form that carries the service's errors, so the operator's input is shown as typed.
    """

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ValidationError as refused:
            if request.method != "POST" or hasattr(request, "_service_refusal"):
                raise
            request._service_refusal = refused
            return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        refused = getattr(request, "_service_refusal", None)
        if refused is None:
            return form

        class RefusedForm(form):
            def _post_clean(self):
                super()._post_clean()
                by_field = refused.error_dict if hasattr(refused, "error_dict") else {NON_FIELD_ERRORS: refused}
                for field, errors in by_field.items():  # a field the form does not show: the form's error
                    self.add_error(field if field in self.fields else None, errors)

        return RefusedForm


class RunSubjectAdmin(ServiceSavedAdmin):
    """What the admin lists of syncs and messages share: health badge, the receiver's last
    refusal, a link to the runs, and the run / pause / resume actions.

    A subclass names its things (`noun`, `runs_changelist`, `runs_filter`) and says how to
    act on one subject through its services (`acts`: "run", "pause", "resume", …). The
    services check each subject's state; the ones they refuse are listed in a warning.
    """

    noun = "subject"
    runs_changelist = ""  # e.g. "admin:deliveries_syncrun_changelist"
    runs_filter = ""  # e.g. "sync__id__exact"
    resumed_note = ""
    acts: dict = {}  # "run" / "pause" / "resume" → a function of one subject

    def _act(self, request, queryset, act: str, *, done: str, refused: str) -> None:
        """Act on each chosen subject through its service; say how many (`done`, with {count})
        and which ones their state refused (StateConflict), with why. A task queue that is down
        (BrokerUnavailable) stops the action: the rest would be refused too."""
        count, conflicts = 0, []
        for obj in queryset:
            try:
                self.acts[act](obj)
            except StateConflict as exc:
                conflicts.append(f"“{obj}”: {exc}")
            except BrokerUnavailable as exc:
                messages.error(request, f"Not every run was queued: {exc}.")
                break
            else:
                count += 1
        messages.info(request, done.format(count=count))
        if conflicts:
            shown = "; ".join(conflicts[:5]) + (f"; and {len(conflicts) - 5} more" if len(conflicts) > 5 else "")
            messages.warning(request, f"{len(conflicts)} {self.noun}(s) {refused}: {shown}")

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
        self._act(request, queryset, "run", done="Queued {count} run(s).", refused="not run")

    @admin.action(description="Pause")
    def pause(self, request, queryset):
        self._act(request, queryset, "pause", done=f"{{count}} {self.noun}(s) paused.", refused="not paused")

    @admin.action(description="Resume")
    def resume(self, request, queryset):
        self._act(request, queryset, "resume", done=f"{{count}} {self.noun}(s) active{self.resumed_note}.",
                  refused="not resumed")
