import os

from celery import Celery

from .broker import use_whole_message_filesystem_transport

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

use_whole_message_filesystem_transport()
app = Celery("cohortsync")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
