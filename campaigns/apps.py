from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "User messages"

    def ready(self) -> None:
        from outbound.pages import Panel, panel_register
        from outbound.sources import AttemptSource, attempt_source_register

        from . import receivers  # noqa: F401  (connects to cohorts' recompute signal)
        from .models import MessageRun
        from .views import cohort_messages_panel

        attempt_source_register(AttemptSource(
            project_path="message__cohort__project",
            key="message", title="User messages", model=MessageRun, select_related=("message",),
            label=lambda run: f"message “{run.message.name}” run #{run.pk}",
        ))
        panel_register(Panel(page="cohort", order=20, template="campaigns/_cohort_messages.html",
                             context=cohort_messages_panel))
