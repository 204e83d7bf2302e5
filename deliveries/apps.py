from django.apps import AppConfig


class DeliveriesConfig(AppConfig):
    name = "deliveries"

    def ready(self) -> None:
        from outbound.sources import AttemptSource, attempt_source_register

        from .models import SyncRun

        attempt_source_register(AttemptSource(
            project_path="sync__cohort__project",
            key="sync", title="Sync runs", model=SyncRun, label=lambda run: f"sync run #{run.pk}",
        ))
