"""The seam against a real edx-platform: run inside the LMS (see README.md).

These tests need edx-platform's test settings and factories, so they are not
collected by the plain-Django suite in tests/ (and not by CI). Anywhere
edx-platform cannot be imported, the whole module is skipped.
"""

import importlib.util

import pytest

if importlib.util.find_spec("lms") is None or importlib.util.find_spec("xmodule") is None:
    pytest.skip(
        "needs a real edx-platform (the lms and xmodule packages): run inside the LMS, see deploy/openedx/README.md",
        allow_module_level=True,
    )

# pylint: disable=wrong-import-position
from django.conf import settings
from django.contrib.auth import get_user_model

from ltigate_openedx import platform
from ltigate_openedx.settings.common import MIDDLEWARE_PATH

try:  # Quince and later
    from xmodule.modulestore.tests.factories import BlockFactory
except ImportError:  # pragma: no cover - older releases
    from xmodule.modulestore.tests.factories import ItemFactory as BlockFactory
from xmodule.modulestore.tests.django_utils import ModuleStoreTestCase
from xmodule.modulestore.tests.factories import CourseFactory

REAL = platform.OpenEdxPlatform()


def test_the_plugin_settings_added_the_middleware_after_authentication():
    middleware = list(settings.MIDDLEWARE)
    auth = "openedx.core.djangoapps.cache_toolbox.middleware.CacheBackedAuthenticationMiddleware"
    assert middleware.index(MIDDLEWARE_PATH) == middleware.index(auth) + 1


def test_every_lazy_import_resolves():
    from common.djangoapps.student.models import (  # noqa: F401
        CourseEnrollment,
        CourseEnrollmentException,
        UnenrollmentNotAllowed,
    )
    from openedx.core.djangoapps.content.course_overviews.models import CourseOverview  # noqa: F401
    from lms.djangoapps.grades.course_grade import CourseGradeBase
    from lms.djangoapps.grades.signals.signals import PROBLEM_WEIGHTED_SCORE_CHANGED

    assert hasattr(CourseGradeBase, "score_for_block") or hasattr(CourseGradeBase, "score_for_module")

    assert REAL.problem_weighted_score_changed() is PROBLEM_WEIGHTED_SCORE_CHANGED
    from lms.djangoapps.courseware.views.views import render_xblock  # noqa: F401
    from lms.djangoapps.grades.api import CourseGradeFactory  # noqa: F401
    from openedx.core.djangoapps.safe_sessions.middleware import mark_user_change_as_expected  # noqa: F401


def test_the_lms_auth_backend_is_a_model_backend():
    from ltigate_openedx.middleware import auth_backend

    assert auth_backend() in settings.AUTHENTICATION_BACKENDS


@pytest.mark.django_db
def test_profiles_are_created_and_renamed():
    from common.djangoapps.student.models import UserProfile

    user = get_user_model().objects.create_user("lti_0123456789abcdef01234567", email="a@example.edu")
    REAL.create_profile(user, "Alice Example")
    assert UserProfile.objects.get(user=user).name == "Alice Example"
    REAL.update_profile_name(user, "Alicia Example")
    assert UserProfile.objects.get(user=user).name == "Alicia Example"


def test_mark_user_change_as_expected_runs():
    REAL.mark_user_change_as_expected(1)


class AncestorsAndScores(ModuleStoreTestCase):
    # The seam's enroll checks the CourseOverview, which the course_published
    # signal creates.
    ENABLED_SIGNALS = ["course_published"]

    def setUp(self):
        super().setUp()
        self.course = CourseFactory.create(org="OrgX", number="CS101", run="2026")
        self.chapter = BlockFactory.create(parent=self.course, category="chapter")
        self.sequential = BlockFactory.create(parent=self.chapter, category="sequential")
        self.vertical = BlockFactory.create(parent=self.sequential, category="vertical")
        self.problem = BlockFactory.create(parent=self.vertical, category="problem")

    def test_block_ancestors_go_up_to_the_course(self):
        ancestors = REAL.block_ancestors(str(self.problem.location))
        assert ancestors == [
            str(self.vertical.location),
            str(self.sequential.location),
            str(self.chapter.location),
            str(self.course.location),
        ]

    def test_score_for_block_sums_a_unit(self):
        user = get_user_model().objects.create_user("lti_89abcdef0123456789abcdef")
        earned, possible = REAL.score_for_block(user, str(self.vertical.location))
        assert isinstance(earned, float) and isinstance(possible, float)
        assert earned == 0.0
        assert possible >= 0.0

    def test_score_for_block_of_an_unknown_course_is_not_found(self):
        user = get_user_model().objects.create_user("lti_89abcdef0123456789abcdff")
        with pytest.raises(platform.NotFound):
            REAL.score_for_block(user, "block-v1:NoOrg+None+2026+type@vertical+block@u1")

    def test_bad_keys_raise_invalid_key(self):
        with pytest.raises(platform.InvalidKey):
            REAL.block_ancestors("not-a-key")
        with pytest.raises(platform.InvalidKey):
            REAL.enroll(get_user_model().objects.create_user("lti_0000000000000000000000aa"), "not-a-key", "audit")

    def test_enroll_creates_reactivates_and_leaves_existing_enrollments(self):
        from common.djangoapps.student.models import CourseEnrollment
        from common.djangoapps.student.tests.factories import UserFactory

        user = UserFactory.create()  # with a UserProfile, as enroll()'s event needs
        course_key = str(self.course.id)
        assert REAL.enroll(user, course_key, "audit") is True
        assert CourseEnrollment.is_enrolled(user, self.course.id)
        assert CourseEnrollment.enrollment_mode_for_user(user, self.course.id) == ("audit", True)
        assert REAL.enroll(user, course_key, "audit") is False
        assert REAL.unenroll(user, course_key) is True
        assert not CourseEnrollment.is_enrolled(user, self.course.id)
        assert REAL.unenroll(user, course_key) is False
        # Re-activated.
        assert REAL.enroll(user, course_key, "audit") is True
        assert CourseEnrollment.is_enrolled(user, self.course.id)

    def test_enroll_leaves_a_learners_own_enrollment_alone(self):
        from common.djangoapps.student.models import CourseEnrollment
        from common.djangoapps.student.tests.factories import UserFactory

        user = UserFactory.create()
        CourseEnrollment.enroll(user, self.course.id, mode="honor")
        assert REAL.enroll(user, str(self.course.id), "audit") is False
        assert CourseEnrollment.enrollment_mode_for_user(user, self.course.id) == ("honor", True)

    def test_enroll_in_a_course_that_does_not_exist_is_not_found(self):
        from common.djangoapps.student.tests.factories import UserFactory

        with pytest.raises(platform.NotFound):
            REAL.enroll(UserFactory.create(), "course-v1:NoOrg+None+2026", "audit")
