from django.urls import path

from . import views

app_name = "deliveries"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("syncs/<int:sync_id>/", views.sync_detail, name="sync"),
    path("syncs/<int:sync_id>/resume/", views.sync_resume, name="sync-resume"),
    path("syncs/<int:sync_id>/run/", views.sync_run_now, name="sync-run"),
    path("syncs/<int:sync_id>/refresh/", views.sync_full_refresh, name="sync-refresh"),
]
