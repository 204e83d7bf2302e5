"""The sync pages (included at the site's root: /syncs/<id>/…)."""

from outbound.pages import subject_urls

from . import views

app_name = "deliveries"
urlpatterns = subject_urls("sync", views.sync_detail, resume=views.sync_resume, run=views.sync_run_now,
                           refresh=views.sync_full_refresh, preview=views.sync_preview_next_run)
