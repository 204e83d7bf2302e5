"""The operators' screens for alerts and their firings."""

import json

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db.models import Count
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from cohorts.admin_scope import ProjectScopedAdmin
from cohorts.models import Cohort
from deliveries.models import Sync
from integrations.models import Connection
from outbound.admin import DeliveryAttemptInline, ServiceSavedAdmin

from . import services
from .models import Alert, AlertFiring
from .selectors import alert_condition_in_words

RECENT_FIRINGS = 10  # on the alert's page; the firings list has them all


class AlertAdminForm(forms.ModelForm):
    """Choices from the alert's project once it has one (the change page, or the add page opened
    with ?project=<id>); otherwise every project's, each named with its project."""

    class Meta:
        model = Alert
        fields = ["project", "name", "kind", "operator", "threshold", "cohort", "sync", "webhooks", "email",
                  "notify_users", "is_active"]
        widgets = {"webhooks": forms.CheckboxSelectMultiple}
        help_texts = {
            "threshold": "Members (size), percent (size change) or failed runs in a row (sync failing); "
                         "0 for a paused sync.",
            "cohort": "For cohort size and size change alerts.",
            "sync": "For sync paused and sync failing alerts.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        project_id = self.instance.project_id or self.initial.get("project")
        choices = {
            "cohort": Cohort.objects.select_related("project").order_by("project__name", "name"),
            "sync": Sync.objects.select_related("cohort__project", "connection").order_by("cohort__project__name",
                                                                                          "id"),
            "webhooks": Connection.objects.select_related("project").order_by("project__name", "name"),
        }
        project_of = {"cohort": "project", "sync": "cohort__project", "webhooks": "project"}
        for name, queryset in choices.items():
            if name not in self.fields:
                continue
            if project_id:
                queryset = queryset.filter(**{project_of[name]: project_id})
            self.fields[name].queryset = queryset
            self.fields[name].label_from_instance = _with_project
        if project_id and "notify_users" in self.fields:
            self.fields["notify_users"].queryset = get_user_model().objects.filter(projects=project_id)

    def clean(self):
        cleaned = super().clean()
        project = cleaned.get("project") or getattr(self.instance, "project", None)
        if project is not None and cleaned.get("webhooks") is not None:
            # The services' own check, so a refusal shows next to the field instead of as a crash on save.
            services.alert_webhooks_check(project=project, webhooks=list(cleaned["webhooks"]))
        return cleaned


def _with_project(obj) -> str:
    project = obj.cohort.project if isinstance(obj, Sync) else obj.project
    return f"{obj} ({project.name})"


@admin.register(Alert)
class AlertAdmin(ProjectScopedAdmin, ServiceSavedAdmin):
    form = AlertAdminForm
    list_display = ["name", "project", "kind", "condition", "watches", "is_triggered", "last_value",
                    "webhook_count", "is_active"]
    list_filter = ["is_active", "is_triggered", "kind", "project"]
    list_select_related = ["project", "cohort", "sync__cohort", "sync__connection"]
    search_fields = ["name"]
    ordering = ["name", "id"]
    filter_horizontal = ["notify_users"]
    readonly_fields = ["is_triggered", "last_evaluated_at", "last_value", "created_by", "recent_firings"]
    fieldsets = [
        (None, {"fields": ["project", "name", "is_active"]}),
        ("Condition", {"fields": ["kind", "operator", "threshold", "cohort", "sync"],
                       "description": "Cohort alerts watch a cohort's size; sync alerts watch a sync. An alert "
                                      "fires once each time its condition starts holding."}),
        ("Notify", {"fields": ["webhooks", "email", "notify_users"],
                    "description": "The custom_alert_triggered payload goes to each webhook; email goes to the "
                                   "alert's creator and the people listed."}),
    ]
    status_fieldset = ("Status", {"fields": ["is_triggered", "last_evaluated_at", "last_value", "created_by",
                                             "recent_firings"]})

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(webhook_count=Count("webhooks", distinct=True))

    def get_fieldsets(self, request, obj=None):
        if obj:
            return [*self.fieldsets, self.status_fieldset]
        # A new alert starts active: alert_create takes no switch.
        first, *rest = self.fieldsets
        return [(None, {"fields": ["project", "name"]}), *rest]

    def get_readonly_fields(self, request, obj=None):
        # An alert stays in its project (alert_update does not move it).
        return [*self.readonly_fields, "project"] if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            fields = {name: data[name] for name in (*services.UPDATABLE_FIELDS, "webhooks", "notify_users")
                      if name in data}
            # A fresh copy: alert_update re-arms on the fields that changed, which `obj` already holds.
            saved = services.alert_update(alert=Alert.objects.get(pk=obj.pk), **fields)
        else:
            saved = services.alert_create(
                project=data["project"], name=data["name"], kind=data["kind"], operator=data["operator"],
                threshold=data["threshold"], cohort=data.get("cohort"), sync=data.get("sync"),
                webhooks=data.get("webhooks") or (), email=data.get("email", False),
                notify_users=data.get("notify_users") or (), created_by=request.user,
            )
        # The admin goes on with `obj` (history entry, redirect): make it the saved alert.
        vars(obj).update(vars(saved))

    def save_related(self, request, form, formsets, change):
        # The services set webhooks and notify_users; only inline formsets are left to save.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    @admin.display(description="condition")
    def condition(self, obj):
        return alert_condition_in_words(alert=obj)

    @admin.display(description="watches")
    def watches(self, obj):
        if obj.cohort_id:
            url = reverse("admin:cohorts_cohort_change", args=[obj.cohort_id])
            return format_html('cohort <a href="{}">{}</a>', url, obj.cohort.name)
        if obj.sync_id:
            url = reverse("admin:deliveries_sync_change", args=[obj.sync_id])
            return format_html('sync <a href="{}">{}</a>', url, str(obj.sync))
        return "–"

    @admin.display(description="webhooks", ordering="webhook_count")
    def webhook_count(self, obj):
        return obj.webhook_count

    @admin.display(description=f"recent firings (newest {RECENT_FIRINGS})")
    def recent_firings(self, obj):
        if obj is None or obj.pk is None:
            return "–"
        firings = AlertFiring.objects.filter(alert=obj).order_by("-fired_at", "-id")[:RECENT_FIRINGS]
        rows = format_html_join(
            "", '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td></tr>',
            ((reverse("admin:alerts_alertfiring_change", args=[f.pk]), f.fired_at.strftime("%Y-%m-%d %H:%M"),
              f.sentence, f.get_status_display()) for f in firings),
        )
        all_url = reverse("admin:alerts_alertfiring_changelist") + f"?alert__id__exact={obj.pk}"
        if not rows:
            return "It has not fired yet."
        return format_html(
            "<table><thead><tr><th>fired at (UTC)</th><th>what happened</th><th>webhook delivery</th></tr></thead>"
            '<tbody>{}</tbody></table><p><a href="{}">All firings of this alert</a></p>', rows, all_url)


@admin.register(AlertFiring)
class AlertFiringAdmin(ProjectScopedAdmin, admin.ModelAdmin):
    """Each time an alert fired: the value, the sentence, what was sent and whether it arrived. Read-only."""

    project_paths = ("alert__project",)
    list_display = ["fired_at", "alert", "value", "short_sentence", "status", "short_error"]
    list_display_links = ["fired_at"]
    list_filter = ["status"]
    list_select_related = ["alert"]
    ordering = ["-fired_at", "-id"]
    show_facets = admin.ShowFacets.NEVER
    fields = ["alert", "fired_at", "current_value", "sentence", "status", "error_message", "emailed_to", "sync_run",
              "cohort_size", "payload_pretty"]
    readonly_fields = fields
    inlines = [DeliveryAttemptInline]

    @admin.display(description="value", ordering="current_value")
    def value(self, obj):
        return f"{obj.current_value:,g}"

    @admin.display(description="sentence")
    def short_sentence(self, obj):
        return Truncator(obj.sentence).chars(140)

    @admin.display(description="error")
    def short_error(self, obj):
        return Truncator(obj.error_message).chars(100)

    @admin.display(description="payload (the body POSTed to each webhook)")
    def payload_pretty(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.payload, indent=2, ensure_ascii=False))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
