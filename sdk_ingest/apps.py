from django.apps import AppConfig


class SdkIngestConfig(AppConfig):
    name = "sdk_ingest"
    verbose_name = "SDK ingestion (Segment, Mixpanel)"

    def ready(self) -> None:
        from . import schema  # noqa: F401 - registers the write key and secret schemes with drf-spectacular
