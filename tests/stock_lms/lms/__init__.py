"""Stand-in for the LMS package of edx-platform: importing it sets up the Celery app
(edx-platform ``lms/__init__.py``: ``from .celery import APP as CELERY_APP``)."""

from .celery import APP as CELERY_APP  # noqa: F401
