from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"

    def ready(self) -> None:
        from outbound.sources import AttemptSource, attempt_source_register

        from . import receivers  # noqa: F401  (connects to cohort and sync signals)
        from .models import AlertFiring

        attempt_source_register(AttemptSource(
            project_path="alert__project",
            key="alert", title="Alert webhooks", model=AlertFiring, select_related=("alert",),
            label=lambda firing: f"alert “{firing.alert.name}” firing #{firing.pk}",
        ))
