"""Stand-in for edx-platform ``lms/djangoapps/grades/tasks.py`` ``recalculate_subsection_grade_v3``."""

from celery import shared_task
from django.contrib.auth import get_user_model
from opaque_keys.edx.keys import CourseKey

RECALCULATE_GRADE_DELAY_SECONDS = 2


@shared_task(name="lms.djangoapps.grades.tasks.recalculate_subsection_grade_v3")
def recalculate_subsection_grade_v3(**kwargs):
    """Recomputes and stores the learner's course grade (the real task updates the
    subsection grade, whose ``SUBSECTION_SCORE_CHANGED`` updates the course grade)."""
    from .course_grade_factory import CourseGradeFactory  # pylint: disable=import-outside-toplevel

    user = get_user_model().objects.get(id=kwargs["user_id"])
    CourseGradeFactory().update(user, course_key=CourseKey.from_string(kwargs["course_id"]))
