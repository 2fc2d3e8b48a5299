"""Stand-in for edx-platform ``common/djangoapps/student/models/course_enrollment.py``.

``CourseEnrollment`` with the class methods the LMS (and a plugin) call, and
the behaviour of the real ones that a caller can trip over:

- ``enroll(user, course_key, mode=None, check_access=False, can_upgrade=False,
  enterprise_uuid=None)``: with ``check_access``, a course without an overview
  in the modulestore raises ``NonExistentCourseError``, a closed enrollment
  window ``EnrollmentClosedError``, a full course ``CourseFullError`` and an
  *existing active enrollment* ``AlreadyEnrolledError``; ``mode=None`` means the
  course's default mode, ``audit``. Enrolling reads ``user.profile.name`` (the
  ``COURSE_ENROLLMENT_CREATED``/``CHANGED`` events carry it), so a user without
  a ``UserProfile`` cannot be enrolled.
- ``unenroll(user, course_id, skip_refund=False)`` deactivates the row, and
  only logs when there is none.
- ``is_enrolled(user, course_key)`` is False for anonymous users and inactive rows.
"""

import datetime
import logging
from collections import namedtuple

from django.conf import settings
from django.db import models
from opaque_keys.edx.keys import CourseKey

from openedx.core.djangoapps.content.course_overviews.models import CourseOverview

log = logging.getLogger(__name__)

DEFAULT_MODE_SLUG = "audit"  # common/djangoapps/course_modes/models.py CourseMode.DEFAULT_MODE_SLUG


class CourseEnrollmentException(Exception):
    pass


class NonExistentCourseError(CourseEnrollmentException):
    pass


class EnrollmentClosedError(CourseEnrollmentException):
    pass


class CourseFullError(CourseEnrollmentException):
    pass


class AlreadyEnrolledError(CourseEnrollmentException):
    pass


class EnrollmentNotAllowed(CourseEnrollmentException):
    pass


class UnenrollmentNotAllowed(CourseEnrollmentException):
    pass


CourseEnrollmentState = namedtuple("CourseEnrollmentState", "mode, is_active")


class CourseEnrollment(models.Model):
    """A learner's enrollment in one course run (table ``student_courseenrollment``)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    course = models.ForeignKey(CourseOverview, db_constraint=False, on_delete=models.DO_NOTHING)
    created = models.DateTimeField(auto_now_add=True, null=True, db_index=True)
    is_active = models.BooleanField(default=True)
    mode = models.CharField(default=DEFAULT_MODE_SLUG, max_length=100)

    class Meta:
        app_label = "student"
        unique_together = (("user", "course"),)
        ordering = ("user", "course")

    def __str__(self):
        return f"[CourseEnrollment] {self.user}: {self.course_id} ({self.created}); active: ({self.is_active})"

    @classmethod
    def get_or_create_enrollment(cls, user, course_key):
        """The row for (user, course), created *inactive* when missing."""
        assert isinstance(course_key, CourseKey)
        if user.id is None:
            user.save()
        enrollment, _ = cls.objects.get_or_create(
            user=user, course_id=course_key, defaults={"mode": DEFAULT_MODE_SLUG, "is_active": False}
        )
        return enrollment

    @classmethod
    def get_enrollment(cls, user, course_key, select_related=None):  # pylint: disable=unused-argument
        assert user
        if user.is_anonymous:
            return None
        return cls.objects.filter(user=user, course_id=course_key).first()

    @classmethod
    def _get_enrollment_state(cls, user, course_key):
        if user is None or user.is_anonymous:
            return CourseEnrollmentState(None, None)
        record = cls.objects.filter(user=user, course_id=course_key).only("mode", "is_active").first()
        if record is None:
            return CourseEnrollmentState(None, None)
        return CourseEnrollmentState(record.mode, record.is_active)

    @classmethod
    def is_enrolled(cls, user, course_key):
        return cls._get_enrollment_state(user, course_key).is_active or False

    @classmethod
    def enrollment_mode_for_user(cls, user, course_id):
        state = cls._get_enrollment_state(user, course_id)
        return state.mode, state.is_active

    @classmethod
    def is_enrollment_closed(cls, user, course):  # pylint: disable=unused-argument
        """The ``ENROLL_IN_COURSE`` rule: closed outside the course's enrollment window."""
        now = datetime.datetime.now(datetime.timezone.utc)
        if course.enrollment_start and now < course.enrollment_start:
            return True
        if course.enrollment_end and now > course.enrollment_end:
            return True
        return False

    def _event_user_name(self):
        # The COURSE_ENROLLMENT_* openedx-events carry UserPersonalData(name=user.profile.name).
        return self.user.profile.name

    def update_enrollment(self, mode=None, is_active=None, skip_refund=False, enterprise_uuid=None):  # pylint: disable=unused-argument
        activation_changed = is_active is not None and self.is_active != is_active
        if activation_changed:
            self.is_active = is_active
        mode_changed = mode is not None and self.mode != mode
        if mode_changed:
            self.mode = mode
        if activation_changed or mode_changed:
            self.save()
            self._event_user_name()
            log.info("enrollment of %s in %s: mode %s, active %s", self.user, self.course_id, self.mode, self.is_active)

    @classmethod
    def enroll(cls, user, course_key, mode=None, check_access=False, can_upgrade=False, enterprise_uuid=None):
        if mode is None:
            mode = DEFAULT_MODE_SLUG  # enrollments.api._default_course_mode for a course without modes
        try:
            course = CourseOverview.get_from_id(course_key)
        except CourseOverview.DoesNotExist:
            course = None
            if check_access:
                log.warning("User %s failed to enroll in non-existent course %s", user.username, course_key)
                raise NonExistentCourseError  # pylint: disable=raise-missing-from
        if check_access:
            if cls.is_enrollment_closed(user, course) and not can_upgrade:
                raise EnrollmentClosedError
            limit = course.max_student_enrollments_allowed
            if limit is not None and cls.objects.filter(course_id=course_key, is_active=True).count() >= limit:
                raise CourseFullError
        if cls.is_enrolled(user, course_key):
            log.warning("User %s attempted to enroll in %s, but they were already enrolled", user.username, course_key)
            if check_access:
                raise AlreadyEnrolledError
        enrollment = cls.get_or_create_enrollment(user, course_key)
        enrollment.update_enrollment(is_active=True, mode=mode, enterprise_uuid=enterprise_uuid)
        # COURSE_ENROLLMENT_CREATED.send_event(... name=user.profile.name ...)
        enrollment._event_user_name()  # pylint: disable=protected-access
        return enrollment

    @classmethod
    def unenroll(cls, user, course_id, skip_refund=False):
        try:
            record = cls.objects.get(user=user, course_id=course_id)
        except cls.DoesNotExist:
            log.error("Tried to unenroll student %s from %s but they were not enrolled", user, course_id)
            return
        record.update_enrollment(is_active=False, skip_refund=skip_refund)
