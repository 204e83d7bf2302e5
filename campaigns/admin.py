"""The operators' screens for user messages, their runs and per-user send records.

Runs and sends grow like sync runs and attempts: their lists order by an index, count at most
CappedCountPaginator.COUNT_CAP rows, and filter on fixed choices.
"""

import zoneinfo

from django import forms
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from cohorts.admin_scope import ProjectScopedAdmin
from outbound.admin import (
    DeliveryAttemptInline,
    LargeListAdmin,
    RunSubjectAdmin,
    SendTestButtonAdmin,
    send_test_message,
)

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
class MessageAdmin(ProjectScopedAdmin, SendTestButtonAdmin, RunSubjectAdmin):
    project_paths = ("cohort__project",)
    noun = "message"
    runs_changelist = "admin:campaigns_messagerun_changelist"
    runs_filter = "message__id__exact"
    # Paused with no reason: a reason is what emails the creator, meant for a receiver's refusal.
    acts = {"run": lambda message: services.message_request_run(message=message),
            "pause": lambda message: services.message_pause(message=message),
            "resume": lambda message: services.message_resume(message=message)}
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
                       "consecutive_failed_runs", "failing_since",
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
        ("Auto-pause", {"fields": ["auto_pause_failed_runs", "auto_pause_hours"],
                        "description": "Empty: the defaults in settings; 0: that rule is off."}),
    ]
    status_fieldset = ("Status", {"fields": ["state", "paused_at", "last_error_message", "last_error_status",
                                             "consecutive_failed_runs", "failing_since",
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

    @admin.display(description="schedule")
    def schedule_text(self, obj):
        return message_schedule_in_words(message=obj)

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

    def send_test_report(self, request, message) -> None:
        result = services.message_send_test(message=message)
        sent = ", ".join(result.distinct_ids) or "no profiles (the project has none)"
        send_test_message(request, title=f"Test send of “{message.name}”", result=result, sent=f" Sent: {sent}.")


@admin.register(MessageRun)
class MessageRunAdmin(ProjectScopedAdmin, LargeListAdmin):
    """Every run of every message, newest first, with its batch attempts. Read-only."""

    project_paths = ("message__cohort__project",)
    list_display = ["started_at", "message", "trigger", "status", "users", "batches", "error"]
    list_display_links = ["started_at"]
    list_filter = ["status"]  # choices: no query to list the options
    list_select_related = ["message"]
    ordering = ["-started_at", "-id"]
    sortable_by = ["started_at"]
    inlines = [DeliveryAttemptInline]

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
class MessageSendAdmin(ProjectScopedAdmin, LargeListAdmin):
    """Who got which message, when: the per-user records behind "at most once". Read-only."""

    project_paths = ("message__cohort__project",)
    list_display = ["reserved_at", "message", "profile_id_text", "sequence", "status", "run", "batch_number",
                    "sent_at"]
    list_filter = ["status", "message"]
    list_select_related = ["message", "profile", "run"]

    @admin.display(description="distinct id")
    def profile_id_text(self, obj):
        return obj.profile.distinct_id

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
