from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"

    def ready(self) -> None:
        from . import receivers  # noqa: F401  (connects to cohort and sync signals)
