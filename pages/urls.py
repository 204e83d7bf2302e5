"""The users' status pages. Their URL namespace keeps its first name, `deliveries`, so every
link and URL name stays as it was."""

from django.urls import path

from . import views

app_name = "deliveries"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("syncs/<int:sync_id>/", views.sync_detail, name="sync"),
    path("syncs/<int:sync_id>/resume/", views.sync_resume, name="sync-resume"),
    path("syncs/<int:sync_id>/run/", views.sync_run_now, name="sync-run"),
    path("syncs/<int:sync_id>/refresh/", views.sync_full_refresh, name="sync-refresh"),
    path("syncs/<int:sync_id>/preview/", views.sync_preview_next_run, name="sync-preview"),
    path("messages/<int:message_id>/", views.message_detail, name="message"),
    path("messages/<int:message_id>/run/", views.message_run_now, name="message-run"),
    path("messages/<int:message_id>/pause/", views.message_pause, name="message-pause"),
    path("messages/<int:message_id>/resume/", views.message_resume, name="message-resume"),
    path("messages/<int:message_id>/test/", views.message_send_test, name="message-test"),
    path("cohorts/<int:cohort_id>/", views.cohort_detail, name="cohort"),
]
