from django.apps import AppConfig


class GradesConfig(AppConfig):
    """``lms/djangoapps/grades/apps.py`` ``GradesConfig``: connects the signal handlers."""

    name = "lms.djangoapps.grades"
    label = "grades"
    default_auto_field = "django.db.models.AutoField"

    def ready(self):
        from .signals import handlers  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
