"""The sync pages (included at the site's root: /syncs/<id>/…)."""

from django.urls import path

from . import views

app_name = "deliveries"
urlpatterns = [
    path("syncs/<int:sync_id>/", views.sync_detail, name="sync_detail"),
    path("syncs/<int:sync_id>/resume/", views.sync_resume, name="sync_resume"),
    path("syncs/<int:sync_id>/run/", views.sync_run_now, name="sync_run"),
    path("syncs/<int:sync_id>/refresh/", views.sync_full_refresh, name="sync_refresh"),
    path("syncs/<int:sync_id>/preview/", views.sync_preview_next_run, name="sync_preview"),
]
