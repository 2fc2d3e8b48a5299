"""Stand-in for edx-platform ``lms/djangoapps/grades/models.py`` ``PersistentCourseGrade``."""

from django.db import models
from opaque_keys.edx.django.models import CourseKeyField


class PersistentCourseGrade(models.Model):
    """A learner's stored course grade; it exists once a grade update ran for an attempted course."""

    user_id = models.IntegerField(blank=False, db_index=True)
    course_id = CourseKeyField(blank=False, max_length=255)
    percent_grade = models.FloatField(blank=False)
    letter_grade = models.CharField("Letter grade for course", blank=False, max_length=255)
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    modified = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        app_label = "grades"
        unique_together = [("course_id", "user_id")]

    @classmethod
    def read(cls, user_id, course_id):
        """The stored grade, or ``PersistentCourseGrade.DoesNotExist``."""
        return cls.objects.get(user_id=user_id, course_id=course_id)

    @classmethod
    def update_or_create(cls, user_id, course_id, **kwargs):
        grade, _ = cls.objects.update_or_create(user_id=user_id, course_id=course_id, defaults=kwargs)
        return grade
