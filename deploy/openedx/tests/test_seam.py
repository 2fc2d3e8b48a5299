"""OpenEdxPlatform's own logic, against stand-ins at edx-platform's import paths.

The real edx-platform checks are in openedx_tests/ (run inside an LMS); these
run everywhere and cover the choices the seam makes itself.
"""

import pytest
from django.contrib.auth import get_user_model

from ltigate_openedx import platform

from . import edx_standins
from .conftest import COURSE, PROBLEM, UNIT

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice():
    return get_user_model().objects.create_user("lti_0123456789abcdef01234567")


@pytest.mark.parametrize("new_api", [True, False], ids=["score_for_block", "score_for_module"])
def test_score_for_block_uses_the_method_the_release_has(monkeypatch, alice, new_api):
    world = edx_standins.install(monkeypatch, new_api=new_api)
    course = edx_standins.CourseKey(COURSE)
    world.grades[(alice.pk, course)] = {
        edx_standins.UsageKey(UNIT): (3, 4),
        edx_standins.UsageKey(PROBLEM): (None, 2.0),
    }
    real = platform.OpenEdxPlatform()
    assert real.score_for_block(alice, UNIT) == (3.0, 4.0)
    # ProblemScore.earned may be None: reported as 0.
    assert real.score_for_block(alice, PROBLEM) == (0.0, 2.0)
    # A block outside the learner's structure sums nothing.
    other = "block-v1:OrgX+CS101+2026+type@vertical+block@zz"
    assert real.score_for_block(alice, other) == (0.0, 0.0)


def test_score_for_block_of_an_unknown_course_or_a_bad_key(monkeypatch, alice):
    world = edx_standins.install(monkeypatch)
    world.missing_courses.add(edx_standins.CourseKey(COURSE))
    real = platform.OpenEdxPlatform()
    with pytest.raises(platform.NotFound):
        real.score_for_block(alice, UNIT)
    with pytest.raises(platform.InvalidKey):
        real.score_for_block(alice, "not-a-key")

