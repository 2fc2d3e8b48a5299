"""Stand-in for edx-platform ``lms/djangoapps/courseware/courses.py``."""

from django.http import Http404
from django.urls import reverse

from xmodule.modulestore.django import modulestore

from .access import has_access
from .access_utils import EnrollmentRequiredAccessError, StartDateError, check_enrollment
from .exceptions import CourseAccessRedirect


def get_course_by_id(course_key, depth=0):
    """``openedx/core/lib/courses.py`` ``get_course_by_id``: Http404 for an unknown course."""
    course = modulestore().get_course(course_key, depth=depth)
    if course is None:
        raise Http404(f"Course not found: {course_key}.")
    return course


def check_course_access(course, user, action, check_if_enrolled=False):
    """Non-staff checks (``has_access`` then, if asked, ``check_enrollment``); staff pass anyway."""
    response = has_access(user, action, course, course.id)
    if response and check_if_enrolled:
        response = check_enrollment(user, course)
    if response:
        return response
    staff = has_access(user, "staff", course.id)
    return staff if staff else response


def check_course_access_with_redirect(course, user, action, check_if_enrolled=False):
    response = check_course_access(course, user, action, check_if_enrolled)
    if response:
        return
    if isinstance(response, StartDateError):
        raise CourseAccessRedirect(f"{reverse('dashboard')}?notlive={course.start:%b %d, %Y}", response)
    if isinstance(response, EnrollmentRequiredAccessError):
        raise CourseAccessRedirect(reverse("about_course", args=[str(course.id)]))
    raise Http404("Course not found.")  # CoursewareAccessException: a non-specific refusal


def get_course_with_access(user, action, course_key, depth=0, check_if_enrolled=False, check_survey_complete=True,
                           check_if_authenticated=False, allow_not_started_courses=False):  # pylint: disable=unused-argument
    course = get_course_by_id(course_key, depth)
    check_course_access_with_redirect(course, user, action, check_if_enrolled)
    return course
