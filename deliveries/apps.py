from django.apps import AppConfig


class DeliveriesConfig(AppConfig):
    name = "deliveries"

    def ready(self) -> None:
        from outbound.pages import Panel, panel_register
        from outbound.sources import AttemptSource, attempt_source_register

        from .models import SyncRun
        from .views import cohort_syncs_panel

        attempt_source_register(AttemptSource(
            project_path="sync__cohort__project",
            key="sync", title="Sync runs", model=SyncRun, label=lambda run: f"sync run #{run.pk}",
        ))
        panel_register(Panel(page="cohort", order=10, template="deliveries/_cohort_syncs.html", context=cohort_syncs_panel))
