"""Stand-in for edx-platform ``lms/djangoapps/courseware/access_utils.py``."""

import datetime

from common.djangoapps.student.models import CourseEnrollment
from xmodule.course_block import COURSE_VISIBILITY_PUBLIC


class AccessResponse:
    """``access_response.AccessResponse``: truthy when access is granted."""

    def __init__(self, has_access, error_code=None):
        self.has_access = has_access
        self.error_code = error_code

    def __bool__(self):
        return self.has_access


ACCESS_GRANTED = AccessResponse(True)
ACCESS_DENIED = AccessResponse(False)


class EnrollmentRequiredAccessError(AccessResponse):
    def __init__(self):
        super().__init__(False, "enrollment_required")


class StartDateError(AccessResponse):
    def __init__(self, start):
        super().__init__(False, "course_not_started")
        self.start = start


def check_public_access(course, visibilities):
    """Granted only with the ``COURSE_ENABLE_UNENROLLED_ACCESS_FLAG`` course waffle flag
    on *and* a matching ``course_visibility``. The flag is off in this LMS, as by default."""
    unenrolled_access_flag = False
    if unenrolled_access_flag and course.course_visibility in visibilities:
        return ACCESS_GRANTED
    return ACCESS_DENIED


def check_enrollment(user, course):
    """``check_enrollment``: a public course, or an active enrollment."""
    if check_public_access(course, [COURSE_VISIBILITY_PUBLIC]):
        return ACCESS_GRANTED
    if CourseEnrollment.is_enrolled(user, course.id):
        return ACCESS_GRANTED
    return EnrollmentRequiredAccessError()


def check_start_date(user, days_early_for_beta, start, course_key, now=None):  # pylint: disable=unused-argument
    if start is None:
        return ACCESS_GRANTED
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return ACCESS_GRANTED if now > start else StartDateError(start)
