"""The Celery application shared by web processes and workers."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "keeperpam.settings")

app = Celery("keeperpam")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
