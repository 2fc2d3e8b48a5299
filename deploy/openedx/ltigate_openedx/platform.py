"""The seam: every use of edx-platform goes through here.

``get()`` returns the platform selected by ``LTIGATE_PLATFORM``:

- ``"openedx"`` (default): ``OpenEdxPlatform``, which imports edx-platform
  lazily, inside each method, so importing this module never needs it;
- ``"fake"``: ``FakePlatform``, a plain-Django stand-in for tests only;
- a dotted path to a class with the same methods.

No other module of this app imports edx-platform.
"""

import threading

from django.core.signals import setting_changed
from django.dispatch import Signal, receiver
from django.http import HttpResponse
from django.utils.module_loading import import_string

from . import conf

# The most ancestors reported for one block (ltigate accepts 64).
MAX_ANCESTORS = 64


class InvalidKey(ValueError):
    """A course or usage key that does not parse."""


class NotFound(LookupError):
    """A block or course that does not exist."""


class EnrollmentRefused(Exception):
    """The LMS refused an enrollment change (closed, full, a filter...)."""


class OpenEdxPlatform:
    """The real thing, inside the LMS."""

    name = "openedx"

    def create_profile(self, user, name):
        """The Open edX profile every LMS user needs, with the full name."""
        self.update_profile_name(user, name)

    def update_profile_name(self, user, name):
        from common.djangoapps.student.models import UserProfile  # pylint: disable=import-error,import-outside-toplevel

        profile, created = UserProfile.objects.get_or_create(user=user, defaults={"name": name})
        if not created and profile.name != name:
            profile.name = name
            profile.save()

    def mark_user_change_as_expected(self, new_user_id):
        """Tells safe-sessions this request changes the session's user.

        openedx/openedx-platform master,
        openedx/core/djangoapps/safe_sessions/middleware.py,
        ``mark_user_change_as_expected(new_user_id)``: "may be None or an LMS
        user ID"; it sets ``expected_user_change`` in a request cache, and
        ``SafeSessionMiddleware._verify_user_unchanged`` skips its check when
        that is set. Called with the new id after a login, and with None after
        a logout, as ``LogoutView.dispatch``
        (openedx/core/djangoapps/user_authn/views/logout.py) does.
        """
        from openedx.core.djangoapps.safe_sessions.middleware import (  # pylint: disable=import-error,import-outside-toplevel
            mark_user_change_as_expected,
        )

        mark_user_change_as_expected(new_user_id)

    def delete_logged_in_cookies(self, response):
        """Deletes the LMS's "logged in" cookies (JWT header/payload,
        ``edxloggedin``, user info), as Open edX's ``LogoutView.dispatch``
        does after ``logout(request)``: openedx/openedx-platform,
        openedx/core/djangoapps/user_authn/cookies.py,
        ``delete_logged_in_cookies(response)``.
        """
        from openedx.core.djangoapps.user_authn.cookies import (  # pylint: disable=import-error,import-outside-toplevel
            delete_logged_in_cookies,
        )

        delete_logged_in_cookies(response)

    def render_xblock(self, request, usage_key_string):
        from lms.djangoapps.courseware.views.views import render_xblock  # pylint: disable=import-error,import-outside-toplevel

        return render_xblock(request, usage_key_string, check_if_enrolled=False)

    def _usage_key(self, usage_key_string):
        from opaque_keys import InvalidKeyError  # pylint: disable=import-error,import-outside-toplevel
        from opaque_keys.edx.keys import UsageKey  # pylint: disable=import-error,import-outside-toplevel

        try:
            return UsageKey.from_string(usage_key_string)
        except InvalidKeyError as exc:
            raise InvalidKey(usage_key_string) from exc

    def _course_key(self, course_key_string):
        from opaque_keys import InvalidKeyError  # pylint: disable=import-error,import-outside-toplevel
        from opaque_keys.edx.keys import CourseKey  # pylint: disable=import-error,import-outside-toplevel

        try:
            return CourseKey.from_string(course_key_string)
        except InvalidKeyError as exc:
            raise InvalidKey(course_key_string) from exc

    def enroll(self, user, course_key_string, mode):
        """Makes sure ``user`` is enrolled in the course, in ``mode``.

        True when this call created the enrollment or re-activated an
        inactive one; False when the learner was enrolled already (its mode
        is left alone). NotFound for a course that does not exist,
        EnrollmentRefused when an openedx-filters pipeline refuses.

        Read at openedx/openedx-platform master,
        common/djangoapps/student/models/course_enrollment.py (re-exported by
        ``common.djangoapps.student.models``):
        - ``CourseEnrollment.is_enrolled(user, course_key)``: the enrollment
          exists and ``is_active``;
        - ``CourseEnrollment.enroll(user, course_key, mode=None,
          check_access=False, can_upgrade=False, enterprise_uuid=None)``:
          runs the ``CourseEnrollmentStarted`` filter, then, with
          ``check_access=True``, raises NonExistentCourseError when no
          ``CourseOverview`` exists, EnrollmentClosedError when
          ``is_enrollment_closed`` (the ``enroll`` access rule: enrollment
          dates, invitation-only), CourseFullError at
          ``max_student_enrollments_allowed``, AlreadyEnrolledError when
          enrolled; otherwise ``get_or_create_enrollment`` and
          ``update_enrollment(is_active=True, mode=mode)`` (which is how an
          inactive enrollment is re-activated) and the enrollment signals.
          All these errors subclass CourseEnrollmentException.

        ``check_access=False``, with the course's existence checked first
        (``CourseOverview.get_from_id``, openedx/core/djangoapps/content/
        course_overviews/models.py, raises ``CourseOverview.DoesNotExist``):
        the platform's launch, through ltigate's launch gate, is the access
        decision here, as it was for the seed plugin, which rendered with the
        enrollment check off. The course team's enrollment window,
        invitation-only setting and cap govern the LMS's own catalog, and a
        course delivered only over LTI commonly closes them to keep the
        public out; honouring them would leave launched learners without the
        enrollment that locked assets and course-wide regrades need. The
        explicit existence check keeps enroll() off its legacy path, which
        enrolls in courses that do not exist.
        """
        from common.djangoapps.student.models import (  # pylint: disable=import-error,import-outside-toplevel
            CourseEnrollment,
            CourseEnrollmentException,
        )
        from openedx.core.djangoapps.content.course_overviews.models import (  # pylint: disable=import-error,import-outside-toplevel
            CourseOverview,
        )

        course_key = self._course_key(course_key_string)
        if CourseEnrollment.is_enrolled(user, course_key):
            return False
        try:
            CourseOverview.get_from_id(course_key)
        except CourseOverview.DoesNotExist as exc:
            raise NotFound(course_key_string) from exc
        try:
            CourseEnrollment.enroll(user, course_key, mode=mode, check_access=False)
        except CourseEnrollmentException as exc:
            # An openedx-filters pipeline (CourseEnrollmentStarted) refused.
            raise EnrollmentRefused(f"{type(exc).__name__}: {exc}") from exc
        return True

    def unenroll(self, user, course_key_string):
        """Deactivates the learner's enrollment in the course.

        True when an active enrollment was deactivated, False when there was
        none. EnrollmentRefused when an openedx-filters pipeline refuses.

        Read at openedx/openedx-platform master,
        common/djangoapps/student/models/course_enrollment.py,
        ``CourseEnrollment.unenroll(user, course_id, skip_refund=False)``:
        runs the ``CourseUnenrollmentStarted`` filter (UnenrollmentNotAllowed)
        and ``update_enrollment(is_active=False)``; it only logs when there is
        no enrollment. The row stays, inactive, as the LMS keeps it.
        """
        from common.djangoapps.student.models import (  # pylint: disable=import-error,import-outside-toplevel
            CourseEnrollment,
            UnenrollmentNotAllowed,
        )

        course_key = self._course_key(course_key_string)
        if not CourseEnrollment.is_enrolled(user, course_key):
            return False
        try:
            CourseEnrollment.unenroll(user, course_key)
        except UnenrollmentNotAllowed as exc:
            raise EnrollmentRefused(f"UnenrollmentNotAllowed: {exc}") from exc
        return True

    def block_ancestors(self, usage_key_string):
        """The block's parent, its parent's parent, ... up to the course block."""
        from xmodule.modulestore.django import modulestore  # pylint: disable=import-error,import-outside-toplevel
        from xmodule.modulestore.exceptions import ItemNotFoundError  # pylint: disable=import-error,import-outside-toplevel

        location = self._usage_key(usage_key_string)
        store = modulestore()
        ancestors = []
        try:
            while len(ancestors) < MAX_ANCESTORS:
                parent = store.get_parent_location(location)
                if parent is None:
                    break
                ancestors.append(_plain_key(parent))
                location = parent
        except ItemNotFoundError as exc:
            raise NotFound(usage_key_string) from exc
        return ancestors

    def score_for_block(self, user, usage_key_string):
        """(earned, possible) of a block for a user, weighted, as floats.

        For a problem, its own weighted score; for a unit, subsection,
        section or course, the sum over the scored problems below it.

        Read at openedx/openedx-platform master:
        - lms/djangoapps/grades/course_grade_factory.py,
          ``CourseGradeFactory.read(user, ..., course_key=...)``: returns a
          ``CourseGrade`` from storage or, when none is stored, a
          ``ZeroCourseGrade`` (never None);
        - lms/djangoapps/grades/course_grade.py,
          ``CourseGradeBase.score_for_block(location)``: returns the tuple
          ``(earned, possible)``; a problem's comes from
          ``problem_scores[location]``, an ``xmodule/graders.py``
          ``ProblemScore`` whose ``earned``/``possible`` are the *weighted*
          values (floats, or None); a composite block's is the sum over
          ``course_data.structure.get_children``, so a block absent from the
          learner's course structure gives (0.0, 0.0).
        Older releases name the method ``score_for_module`` (same body).
        """
        from lms.djangoapps.grades.api import CourseGradeFactory  # pylint: disable=import-error,import-outside-toplevel
        from xmodule.modulestore.exceptions import ItemNotFoundError  # pylint: disable=import-error,import-outside-toplevel

        usage_key = self._usage_key(usage_key_string)
        try:
            grade = CourseGradeFactory().read(user, course_key=usage_key.course_key)
            score = getattr(grade, "score_for_block", None) or grade.score_for_module
            # The course structure is read lazily, inside score_for_block:
            # an unknown course raises here.
            earned, possible = score(usage_key)
        except ItemNotFoundError as exc:
            raise NotFound(str(usage_key.course_key)) from exc
        return float(earned or 0.0), float(possible or 0.0)

    def problem_weighted_score_changed(self):
        from lms.djangoapps.grades.signals.signals import (  # pylint: disable=import-error,import-outside-toplevel
            PROBLEM_WEIGHTED_SCORE_CHANGED,
        )

        return PROBLEM_WEIGHTED_SCORE_CHANGED


def _plain_key(key):
    """The key as a string, without branch or version information."""
    for strip in ("version_agnostic", "for_branch"):
        method = getattr(key, strip, None)
        if method is not None:
            key = method() if strip == "version_agnostic" else method(None)
    return str(key)


# Stands in for PROBLEM_WEIGHTED_SCORE_CHANGED under FakePlatform.
FAKE_PROBLEM_WEIGHTED_SCORE_CHANGED = Signal()


class FakePlatform:
    """A plain-Django stand-in for tests; it records what it is asked.

    Never use it in an LMS: it keeps profiles in memory and renders a
    placeholder instead of the block.
    """

    name = "fake"

    def __init__(self):
        self.reset()

    def reset(self):
        self.profiles = {}
        self.user_changes = []
        self.rendered = []
        self.ancestors = {}
        self.scores = {}
        # (user pk, course key) -> {"mode": ..., "active": bool}
        self.enrollments = {}
        # course key -> the exception enroll() raises for it
        self.enroll_refusals = {}
        self.enroll_calls = []
        self.unenroll_calls = []
        self.logged_in_cookie_deletions = 0

    def create_profile(self, user, name):
        self.profiles[user.pk] = name

    def update_profile_name(self, user, name):
        self.profiles[user.pk] = name

    def mark_user_change_as_expected(self, new_user_id):
        self.user_changes.append(new_user_id)

    def delete_logged_in_cookies(self, response):
        self.logged_in_cookie_deletions += 1
        response.delete_cookie("edxloggedin", path="/")

    def render_xblock(self, request, usage_key_string):
        self.rendered.append((request.user.get_username(), usage_key_string))
        return HttpResponse(
            f"block {usage_key_string} for {request.user.get_username()}",
            content_type="text/plain; charset=utf-8",
        )

    def _check(self, usage_key_string):
        if not usage_key_string.startswith("block-v1:") or "+type@" not in usage_key_string:
            raise InvalidKey(usage_key_string)

    def enroll(self, user, course_key_string, mode):
        self.enroll_calls.append((user.pk, course_key_string, mode))
        if not course_key_string.startswith("course-v1:"):
            raise InvalidKey(course_key_string)
        refusal = self.enroll_refusals.get(course_key_string)
        if refusal is not None:
            raise refusal
        current = self.enrollments.get((user.pk, course_key_string))
        if current is not None and current["active"]:
            return False
        self.enrollments[(user.pk, course_key_string)] = {"mode": mode, "active": True}
        return True

    def unenroll(self, user, course_key_string):
        self.unenroll_calls.append((user.pk, course_key_string))
        current = self.enrollments.get((user.pk, course_key_string))
        if current is None or not current["active"]:
            return False
        current["active"] = False
        return True

    def block_ancestors(self, usage_key_string):
        self._check(usage_key_string)
        return list(self.ancestors.get(usage_key_string, []))[:MAX_ANCESTORS]

    def score_for_block(self, user, usage_key_string):
        self._check(usage_key_string)
        try:
            return self.scores[(user.get_username(), usage_key_string)]
        except KeyError:
            raise NotFound(usage_key_string) from None

    def problem_weighted_score_changed(self):
        return FAKE_PROBLEM_WEIGHTED_SCORE_CHANGED


_BUILTIN = {"openedx": OpenEdxPlatform, "fake": FakePlatform}
_current = None
_lock = threading.Lock()


def get():
    """The platform selected by LTIGATE_PLATFORM (one instance per process)."""
    global _current  # pylint: disable=global-statement
    with _lock:
        choice = conf.get("LTIGATE_PLATFORM")
        if _current is None or _current[0] != choice:
            cls = _BUILTIN.get(choice) or import_string(choice)
            _current = (choice, cls())
        return _current[1]


@receiver(setting_changed)
def _forget_platform(setting, **kwargs):
    global _current  # pylint: disable=global-statement
    if setting == "LTIGATE_PLATFORM":
        with _lock:
            _current = None
