from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"

    def ready(self) -> None:
        from outbound.pages import Panel, panel_register
        from outbound.sources import AttemptSource, attempt_source_register

        from . import receivers  # noqa: F401  (connects to cohort and sync signals)
        from .models import AlertFiring
        from .views import cohort_alerts_panel, sync_alerts_panel

        attempt_source_register(AttemptSource(
            project_path="alert__project",
            key="alert", title="Alert webhooks", model=AlertFiring, select_related=("alert",),
            label=lambda firing: f"alert “{firing.alert.name}” firing #{firing.pk}",
        ))
        panel_register(Panel(page="sync", order=10, template="alerts/_alerts.html", context=sync_alerts_panel))
        panel_register(Panel(page="cohort", order=30, template="alerts/_alerts.html", context=cohort_alerts_panel))
