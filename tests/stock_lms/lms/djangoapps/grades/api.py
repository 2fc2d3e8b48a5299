"""Stand-in for edx-platform ``lms/djangoapps/grades/api.py`` (the factory it re-exports)."""

from .course_grade_factory import CourseGradeFactory  # noqa: F401
