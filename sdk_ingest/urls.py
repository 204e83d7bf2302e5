"""The SDK endpoints, at the paths the SDKs append to their configured host."""

from django.urls import path

from . import api
from .segment import MESSAGE_TYPES


def _also_with_slash(route: str, view, name: str) -> list:
    """Mixpanel's browser library adds a slash, its server libraries do not: both are served,
    the schema shows the one without."""
    return [path(route, view.as_view(), name=name), path(f"{route}/", view.as_view(schema=None))]


urlpatterns = [
    *(path(f"v1/{kind}", api.SegmentCallView.as_view(message_type=kind), name=f"segment-{kind}")
      for kind in MESSAGE_TYPES),
    path("v1/batch", api.SegmentBatchView.as_view(), name="segment-batch"),
    # analytics.js posts to the first letter of the type (`/b`: its batching delivery strategy).
    *(path(f"v1/{kind[0]}", api.SegmentCallView.as_view(message_type=kind, schema=None)) for kind in MESSAGE_TYPES),
    path("v1/b", api.SegmentBatchView.as_view(schema=None)),
    path("v1/projects/<str:write_key>/settings", api.SegmentSettingsView.as_view(), name="segment-settings"),
    *_also_with_slash("track", api.MixpanelTrackView, "mixpanel-track"),
    *_also_with_slash("engage", api.MixpanelEngageView, "mixpanel-engage"),
    *_also_with_slash("import", api.MixpanelImportView, "mixpanel-import"),
    *_also_with_slash("groups", api.MixpanelGroupsView, "mixpanel-groups"),
]
