"""Stand-in for edx-platform ``openedx/core/djangoapps/content/course_overviews/models.py``."""

from django.db import models
from opaque_keys.edx.django.models import CourseKeyField


class CourseOverview(models.Model):
    """The cached summary of a course that enrollments point to.

    ``get_from_id`` imitates ``CourseOverview.get_from_id``: the stored
    overview, or one loaded from the modulestore and saved on first use;
    ``CourseOverview.DoesNotExist`` when the modulestore has no such course.
    """

    id = CourseKeyField(db_index=True, primary_key=True, max_length=255)  # pylint: disable=invalid-name
    display_name = models.TextField(null=True)
    start = models.DateTimeField(null=True)
    end = models.DateTimeField(null=True)
    enrollment_start = models.DateTimeField(null=True)
    enrollment_end = models.DateTimeField(null=True)
    max_student_enrollments_allowed = models.IntegerField(null=True)
    created = models.DateTimeField(auto_now_add=True)
    modified = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "course_overviews"

    @classmethod
    def get_from_id(cls, course_id):
        try:
            return cls.objects.get(id=course_id)
        except cls.DoesNotExist:
            pass
        from xmodule.modulestore.django import modulestore  # pylint: disable=import-outside-toplevel

        course = modulestore().get_course(course_id)
        if course is None:
            raise cls.DoesNotExist(f"no course {course_id} in the modulestore")
        overview, _ = cls.objects.get_or_create(
            id=course.id,
            defaults={
                "display_name": course.display_name,
                "start": course.start,
                "end": course.end,
                "enrollment_start": course.enrollment_start,
                "enrollment_end": course.enrollment_end,
                "max_student_enrollments_allowed": course.max_student_enrollments_allowed,
            },
        )
        return overview

    def __str__(self):
        return str(self.id)
