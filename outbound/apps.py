from django.apps import AppConfig


class OutboundConfig(AppConfig):
    """The delivery core: what syncs, messages and alert firings share (docs/design.md)."""

    name = "outbound"
