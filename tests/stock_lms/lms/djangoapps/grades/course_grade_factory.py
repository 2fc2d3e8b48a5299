"""Stand-in for edx-platform ``lms/djangoapps/grades/course_grade_factory.py``."""

from .course_data import CourseData
from .course_grade import CourseGrade, ZeroCourseGrade
from .models import PersistentCourseGrade


class CourseGradeFactory:
    def read(self, user, course=None, collected_block_structure=None, course_structure=None, course_key=None,
             create_if_needed=True):  # pylint: disable=unused-argument
        """The stored ``CourseGrade``, or a ``ZeroCourseGrade``: never None."""
        course_data = CourseData(user, course, collected_block_structure, course_structure, course_key)
        try:
            stored = PersistentCourseGrade.read(user.id, course_data.course_key)
        except PersistentCourseGrade.DoesNotExist:
            return ZeroCourseGrade(user, course_data)
        return CourseGrade(user, course_data, stored.percent_grade, stored.letter_grade,
                           stored.letter_grade != "", last_updated=stored.modified)

    def update(self, user, course=None, collected_block_structure=None, course_structure=None, course_key=None,
               force_update_subsections=False):
        """Computes the grade and stores it when the course was attempted."""
        course_data = CourseData(user, course, collected_block_structure, course_structure, course_key)
        grade = CourseGrade(user, course_data, force_update_subsections=force_update_subsections).update()
        if grade.attempted:
            PersistentCourseGrade.update_or_create(
                user_id=user.id,
                course_id=course_data.course_key,
                percent_grade=grade.percent,
                letter_grade=grade.letter_grade or "",
            )
        return grade
