"""Stand-in for edx-platform ``lms/celery.py`` (``openedx/core/lib/celery``): the Celery app
that ``shared_task`` binds to. Configured from the Django settings; tasks run eagerly
(``CELERY_TASK_ALWAYS_EAGER``), in the process and request that queued them."""

from celery import Celery

APP = Celery("proj")
APP.config_from_object("django.conf:settings", namespace="CELERY")
APP.set_default()
