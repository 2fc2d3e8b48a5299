from django.apps import AppConfig


class CoursewareConfig(AppConfig):
    name = "lms.djangoapps.courseware"
    label = "courseware"
    default_auto_field = "django.db.models.AutoField"
