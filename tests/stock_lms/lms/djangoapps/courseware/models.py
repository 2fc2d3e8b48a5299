"""Stand-in for edx-platform ``lms/djangoapps/courseware/models.py`` ``StudentModule``."""

from django.conf import settings
from django.db import models
from opaque_keys.edx.django.models import CourseKeyField, UsageKeyField


class StudentModule(models.Model):
    """A learner's state and raw score for one block (table ``courseware_studentmodule``)."""

    module_type = models.CharField(max_length=32, default="problem", db_index=True)
    module_state_key = UsageKeyField(max_length=255, db_column="module_id")
    student = models.ForeignKey(settings.AUTH_USER_MODEL, db_index=True, on_delete=models.CASCADE)
    course_id = CourseKeyField(max_length=255, db_index=True)
    state = models.TextField(null=True, blank=True)
    grade = models.FloatField(null=True, blank=True, db_index=True)
    max_grade = models.FloatField(null=True, blank=True)
    done = models.CharField(max_length=8, default="na")
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    modified = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        app_label = "courseware"
        unique_together = (("student", "module_state_key", "course_id"),)

    def __str__(self):
        return f"StudentModule<{self.student_id}, {self.module_state_key}>"
