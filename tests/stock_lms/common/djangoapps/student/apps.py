from django.apps import AppConfig


class StudentConfig(AppConfig):
    """``common/djangoapps/student/apps.py`` ``StudentConfig`` (label ``student``)."""

    name = "common.djangoapps.student"
    label = "student"
    default_auto_field = "django.db.models.AutoField"
