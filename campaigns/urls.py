"""The message pages (included at the site's root: /messages/<id>/…)."""

from django.urls import path

from . import views

app_name = "campaigns"
urlpatterns = [
    path("messages/<int:message_id>/", views.message_detail, name="message_detail"),
    path("messages/<int:message_id>/run/", views.message_run_now, name="message_run"),
    path("messages/<int:message_id>/pause/", views.message_pause, name="message_pause"),
    path("messages/<int:message_id>/resume/", views.message_resume, name="message_resume"),
    path("messages/<int:message_id>/test/", views.message_send_test, name="message_test"),
]
