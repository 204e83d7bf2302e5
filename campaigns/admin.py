"""The operators' screens for user messages, their runs and per-user send records.

Runs and sends grow like sync runs and attempts: their lists order by an index, count at most
CappedCountPaginator.COUNT_CAP rows, and filter on fixed choices.
"""

import zoneinfo

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from cohorts.admin import CappedCountPaginator
from deliveries.admin import STATE_COLOURS, DeliveryAttemptInline
from deliveries.dispatch import BrokerUnavailable

from . import services
from .models import Message, MessageRun, MessageSend
from .selectors import DAY_NAMES, message_schedule_in_words


class MessageAdminForm(forms.ModelForm):
    """Friendlier inputs for the JSON fields; the model's clean() (the same one the services
    run) validates, so a refused value shows next to its field."""

    days_of_week = forms.TypedMultipleChoiceField(
        choices=list(enumerate(DAY_NAMES)), coerce=int, required=False, widget=forms.CheckboxSelectMultiple,
        help_text="Weekly cadence: the days it goes out.",
    )
    timezone = forms.ChoiceField(initial="UTC", help_text="The time zone of the time of day.")
    properties = forms.CharField(
        label="Profile properties to send", required=False,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 40, "placeholder": "plan\ncountry"}),
        help_text="One property name a line; leave empty to send all of a profile's properties.",
    )

    class Meta:
        model = Message
        fields = ["name", "cohort", "connection", "schedule", "cadence", "interval", "time_of_day", "timezone",
                  "days_of_week", "day_of_month", "limit_count", "limit_days", "properties"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["timezone"].choices = [(name, name) for name in sorted(zoneinfo.available_timezones())]
        self.initial["properties"] = "\n".join(self.instance.properties or [])
        for name in ("cohort", "connection"):
            if name in self.fields:
                field = self.fields[name]
                field.queryset = field.queryset.select_related("project").order_by("project__name", "name")
                field.label_from_instance = lambda obj: f"{obj} ({obj.project.name})"
        if self.instance.pk and "connection" in self.fields:
            # A message sends to a connection of its cohort's project.
            self.fields["connection"].queryset = self.fields["connection"].queryset.filter(
                project_id=self.instance.cohort.project_id)

    def clean_properties(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data["properties"].splitlines() if line.strip()]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    form = MessageAdminForm
    list_display = ["name", "state_badge", "schedule_text", "cohort", "connection", "error", "next_run_at",
                    "runs_link"]
    list_filter = ["state", "schedule", "cadence"]
    list_select_related = ["cohort", "connection"]
    search_fields = ["name", "cohort__name", "connection__name"]
    ordering = ["-id"]
    actions = ["run_now", "pause", "resume"]
    # Enter in a field submits the form's first button: with the Save row on top, that is Save, not "Send test".
    save_on_top = True
    readonly_fields = ["state", "paused_at", "last_error_message", "last_error_status", "next_run_at", "created_by",
                       "send_test_button"]

    fieldsets = [
        ("Target", {"fields": ["name", "cohort", "connection", "properties"]}),
        ("Schedule", {"fields": ["schedule", "cadence", "interval", "time_of_day", "timezone", "days_of_week",
                                 "day_of_month"],
                      "description": "ASAP: sent as users start matching. Scheduled: at the times below, once per "
                                     "user ever. Recurring: repeats within the per-user limit."}),
        ("Recurring limit", {"fields": ["limit_count", "limit_days"],
                             "description": "Recurring messages only: each user gets at most this many messages in "
                                            "any window of this many days."}),
    ]
    status_fieldset = ("Status", {"fields": ["state", "paused_at", "last_error_message", "last_error_status",
                                             "next_run_at", "created_by", "send_test_button"]})

    def get_fieldsets(self, request, obj=None):
        return [*self.fieldsets, self.status_fieldset] if obj else self.fieldsets

    def get_readonly_fields(self, request, obj=None):
        # The services never move a message to another cohort: its send records belong to that audience.
        return [*self.readonly_fields, "cohort"] if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        fields = {name: value for name, value in form.cleaned_data.items() if name in services.EDITABLE_FIELDS}
        if change:
            services.message_update(message=obj, **fields)
            return
        created = services.message_create(cohort=form.cleaned_data["cohort"], created_by=request.user, **fields)
        # The admin goes on with `obj` (history entry, redirect): make it the saved message.
        vars(obj).update(vars(created))

    # --- list columns -----------------------------------------------------------------

    @admin.display(description="state", ordering="state")
    def state_badge(self, obj):
        health = "failing" if obj.state == Message.State.ACTIVE and obj.last_error_message else obj.state
        return format_html('<strong style="color: {}">{}</strong>', STATE_COLOURS.get(health, "inherit"), health)

    @admin.display(description="schedule")
    def schedule_text(self, obj):
        return message_schedule_in_words(message=obj)

    @admin.display(description="last error (receiver's message)")
    def error(self, obj):
        if not obj.last_error_message:
            return ""
        status = f"HTTP {obj.last_error_status}: " if obj.last_error_status else ""
        return status + Truncator(obj.last_error_message).chars(120)

    @admin.display(description="runs")
    def runs_link(self, obj):
        return format_html('<a href="{}?message__id__exact={}">runs</a>',
                           reverse("admin:campaigns_messagerun_changelist"), obj.pk)

    # --- actions ----------------------------------------------------------------------

    @admin.action(description="Run now")
    def run_now(self, request, queryset):
        active = list(queryset.filter(state=Message.State.ACTIVE))
        try:
            for message in active:
                services.message_request_run(message=message)
        except BrokerUnavailable as exc:
            messages.error(request, f"Not every run was queued: {exc}.")
            return
        messages.info(request, f"Queued {len(active)} run(s).")
        if skipped := queryset.exclude(state=Message.State.ACTIVE).count():
            messages.warning(request, f"{skipped} paused message(s) not run: resume them first.")

    @admin.action(description="Pause")
    def pause(self, request, queryset):
        active = list(queryset.filter(state=Message.State.ACTIVE))
        for message in active:
            # No reason: a reason is what emails the creator, meant for a receiver's refusal.
            services.message_pause(message=message)
        messages.info(request, f"Paused {len(active)} message(s).")

    @admin.action(description="Resume")
    def resume(self, request, queryset):
        paused = list(queryset.filter(state=Message.State.PAUSED))
        for message in paused:
            services.message_resume(message=message)
        messages.info(request, f"Resumed {len(paused)} message(s).")

    # --- test send --------------------------------------------------------------------

    @admin.display(description="test send")
    def send_test_button(self, obj):
        if obj is None or obj.pk is None:
            return "–"
        # A submit button of the change form posting elsewhere: HTML forms cannot nest, and the
        # change form already carries the CSRF token.
        url = reverse("admin:campaigns_message_send_test", args=[obj.pk])
        return format_html(
            '<button type="submit" formaction="{}" formmethod="post" class="button">Send test</button>'
            '<div class="help">POSTs 5 random profiles of the project to the saved connection and shows the '
            "answer. Nobody is marked as sent.</div>", url)

    def get_urls(self):
        send_test = self.admin_site.admin_view(self.send_test_view)
        return [path("<int:message_id>/send-test/", send_test, name="campaigns_message_send_test"),
                *super().get_urls()]

    def send_test_view(self, request, message_id: int):
        """The change page's "Send test" button (a POST: it sends a request out)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        message = get_object_or_404(Message.objects.select_related("cohort", "connection"), pk=message_id)
        if not self.has_change_permission(request, message):
            return HttpResponseRedirect(reverse("admin:index"))
        result = services.message_send_test(message=message)
        status = f"HTTP {result.http_status}" if result.http_status else "no HTTP answer"
        sent = ", ".join(result.distinct_ids) or "no profiles (the project has none)"
        text = f"Test send of “{message.name}”: {result.outcome}, {status} in {result.latency_ms} ms. Sent: {sent}."
        if result.message:
            text += f" {result.message}."
        if result.response_excerpt:
            text += f" The receiver answered: {result.response_excerpt}"
        messages.add_message(request, messages.SUCCESS if result.outcome == "success" else messages.ERROR, text)
        return HttpResponseRedirect(reverse("admin:campaigns_message_change", args=[message.pk]))


@admin.register(MessageRun)
class MessageRunAdmin(admin.ModelAdmin):
    """Every run of every message, newest first, with its batch attempts. Read-only."""

    list_display = ["started_at", "message", "trigger", "status", "users", "batches", "error"]
    list_display_links = ["started_at"]
    list_filter = ["status"]  # choices: no query to list the options
    list_select_related = ["message"]
    ordering = ["-started_at", "-id"]
    sortable_by = ["started_at"]
    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    inlines = [DeliveryAttemptInline]
    readonly_fields = [f.name for f in MessageRun._meta.fields]

    @admin.display(description="users sent")
    def users(self, obj):
        return f"{obj.sent_count}/{obj.users_count}"

    @admin.display(description="batches")
    def batches(self, obj):
        text = f"{obj.batches_delivered}/{obj.total_batches}"
        return f"{text} ({obj.batches_failed} failed)" if obj.batches_failed else text

    @admin.display(description="error")
    def error(self, obj):
        status = f"HTTP {obj.http_status}: " if obj.http_status and obj.error_message else ""
        return status + Truncator(obj.error_message).chars(100)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(MessageSend)
class MessageSendAdmin(admin.ModelAdmin):
    """Who got which message, when: the per-user records behind "at most once". Read-only."""

    list_display = ["reserved_at", "message", "profile_id_text", "sequence", "status", "run", "batch_number",
                    "sent_at"]
    list_filter = ["status", "message"]
    list_select_related = ["message", "profile", "run"]
    ordering = ["-id"]
    sortable_by = []
    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    readonly_fields = [f.name for f in MessageSend._meta.fields]

    @admin.display(description="distinct id")
    def profile_id_text(self, obj):
        return obj.profile.distinct_id

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
