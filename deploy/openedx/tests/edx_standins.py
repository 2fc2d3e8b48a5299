"""Minimal stand-ins for the few edx-platform modules a seam test needs.

They are installed into ``sys.modules`` for one test only (``install``), so
``OpenEdxPlatform``'s real code runs, and its lazy imports resolve, without
an LMS. Each stand-in has only what the seam touches, with the behaviour read
from openedx/openedx-platform master (cited where it is defined). This is not
the app's own code: it is the outside world the seam talks to.
"""

import sys
import types


class InvalidKeyError(Exception):
    """opaque_keys.InvalidKeyError."""


class ItemNotFoundError(Exception):
    """xmodule.modulestore.exceptions.ItemNotFoundError."""


class CourseKey:
    def __init__(self, text):
        self.text = text

    def __str__(self):
        return self.text

    def __eq__(self, other):
        return isinstance(other, CourseKey) and other.text == self.text

    def __hash__(self):
        return hash(self.text)

    @classmethod
    def from_string(cls, text):
        if not text.startswith("course-v1:"):
            raise InvalidKeyError(text)
        return cls(text)


class UsageKey:
    def __init__(self, text):
        self.text = text
        self.course_key = CourseKey("course-v1:" + text[len("block-v1:"):].split("+type@")[0])

    def __str__(self):
        return self.text

    def __eq__(self, other):
        return isinstance(other, UsageKey) and other.text == self.text

    def __hash__(self):
        return hash(self.text)

    @classmethod
    def from_string(cls, text):
        if not text.startswith("block-v1:") or "+type@" not in text:
            raise InvalidKeyError(text)
        return cls(text)


class World:
    """What the stand-in LMS holds: grades per (user id, course key)."""

    def __init__(self):
        self.grades = {}
        self.missing_courses = set()


def install(monkeypatch, new_api=True):
    """Puts the stand-ins in sys.modules for this test; returns their World.

    ``new_api``: course grades have ``score_for_block`` (master) or only
    ``score_for_module`` (older releases).
    """
    world = World()

    class CourseGrade:
        # lms/djangoapps/grades/course_grade.py, CourseGradeBase: a tuple
        # (earned, possible) of weighted scores, the problem's own or the sum
        # over the block's children in the learner's course structure.
        def __init__(self, user, course_key):
            if course_key in world.missing_courses:
                # The structure is read lazily, when a score is asked for.
                self._scores = None
            else:
                self._scores = world.grades.get((user.pk, course_key), {})

        def _score(self, location):
            if self._scores is None:
                raise ItemNotFoundError(location)
            return self._scores.get(location, (0.0, 0.0))

    if new_api:
        CourseGrade.score_for_block = CourseGrade._score
    else:
        CourseGrade.score_for_module = CourseGrade._score

    class CourseGradeFactory:
        # lms/djangoapps/grades/course_grade_factory.py: read() returns a
        # CourseGrade or a ZeroCourseGrade, never None.
        def read(self, user, course=None, collected_block_structure=None, course_structure=None,
                 course_key=None, create_if_needed=True):
            return CourseGrade(user, course_key)

    modules = {
        "opaque_keys": {"InvalidKeyError": InvalidKeyError},
        "opaque_keys.edx": {},
        "opaque_keys.edx.keys": {"CourseKey": CourseKey, "UsageKey": UsageKey},
        "lms": {},
        "lms.djangoapps": {},
        "lms.djangoapps.grades": {},
        "lms.djangoapps.grades.api": {"CourseGradeFactory": CourseGradeFactory},
        "xmodule": {},
        "xmodule.modulestore": {},
        "xmodule.modulestore.exceptions": {"ItemNotFoundError": ItemNotFoundError},
    }
    for name, attributes in modules.items():
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        monkeypatch.setitem(sys.modules, name, module)
    return world
