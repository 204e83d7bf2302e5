from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "User messages"

    def ready(self) -> None:
        from . import receivers  # noqa: F401  (connects to cohorts' recompute signal)
