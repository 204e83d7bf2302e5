from django.apps import AppConfig


class ObservabilityConfig(AppConfig):
    name = "observability"
    verbose_name = "Metrics and health"

    def ready(self) -> None:
        from . import metrics

        metrics.connect_receivers()
