"""The message pages (included at the site's root: /messages/<id>/…)."""

from outbound.pages import subject_urls

from . import views

app_name = "campaigns"
urlpatterns = subject_urls("message", views.message_detail, run=views.message_run_now, pause=views.message_pause,
                           resume=views.message_resume, test=views.message_send_test)
