"""Stand-in for edx-platform ``common/djangoapps/student/models/__init__.py``: the
names other apps import from ``common.djangoapps.student.models``."""

from .course_enrollment import (  # noqa: F401
    AlreadyEnrolledError,
    CourseEnrollment,
    CourseEnrollmentException,
    CourseFullError,
    EnrollmentClosedError,
    EnrollmentNotAllowed,
    NonExistentCourseError,
    UnenrollmentNotAllowed,
)
from .user import UserProfile  # noqa: F401
