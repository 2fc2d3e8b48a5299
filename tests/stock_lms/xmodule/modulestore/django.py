"""Stand-in for edx-platform ``xmodule/modulestore/django.py`` ``modulestore()``.

One read-only store holding the fixture course of ``stock_lms/fixture_course.py``.
Its methods behave like the LMS's ``MixedModuleStore`` in front of split:

- ``get_course`` returns None for an unknown course (Mixed catches the
  split store's ``ItemNotFoundError``);
- ``get_item`` raises ``ItemNotFoundError`` for an unknown block;
- ``get_parent_location`` returns the parent's key, None for the course block
  or for a block the (existing) course does not hold, and raises
  ``ItemNotFoundError`` for an unknown course or a deprecated key
  (split ``SplitMongoModuleStore.get_parent_location``);
- ``get_items(course_key, qualifiers={'name': ...})`` filters on block id
  (``name``) and ``category``, as ``jump_to_id`` uses it.
"""

from contextlib import contextmanager

from opaque_keys.edx.keys import CourseKey, UsageKey

from .exceptions import ItemNotFoundError


def _plain(key):
    """The key without branch or version, as split compares them."""
    for method in ("for_branch", "version_agnostic"):
        fn = getattr(key, method, None)
        if fn is not None:
            key = fn(None) if method == "for_branch" else fn()
    return key


class FixtureModuleStore:
    """The modulestore of this LMS: one course, built in code."""

    def __init__(self, courses):
        self._blocks = {}
        self._courses = {}
        for course in courses:
            self._courses[course.location.course_key] = course.location
            self._index(course, None)

    def _index(self, block, parent):
        block.parent = parent
        self._blocks[block.location] = block
        for child in block.child_blocks:
            self._index(child, block.location)
        block.children = [child.location for child in block.child_blocks]

    # --- MixedModuleStore API used by the LMS views ---

    def fill_in_run(self, course_key):
        return course_key

    def make_course_usage_key(self, course_key):
        return course_key.make_usage_key("course", "course")

    @contextmanager
    def bulk_operations(self, course_key, **kwargs):  # pylint: disable=unused-argument
        yield

    @contextmanager
    def branch_setting(self, branch_setting, course_id=None):  # pylint: disable=unused-argument
        yield

    def has_course(self, course_key):
        return _plain(course_key) in self._courses

    def get_course(self, course_key, depth=0, **kwargs):  # pylint: disable=unused-argument
        if not isinstance(course_key, CourseKey):
            raise TypeError("get_course takes a CourseKey")
        location = self._courses.get(_plain(course_key))
        return self._blocks[location] if location is not None else None

    def has_item(self, usage_key, **kwargs):  # pylint: disable=unused-argument
        return _plain(usage_key) in self._blocks

    def get_item(self, usage_key, depth=0, **kwargs):  # pylint: disable=unused-argument
        if not isinstance(usage_key, UsageKey):
            raise TypeError("get_item takes a UsageKey")
        try:
            return self._blocks[_plain(usage_key)]
        except KeyError:
            raise ItemNotFoundError(usage_key) from None

    def get_items(self, course_key, qualifiers=None, **kwargs):  # pylint: disable=unused-argument
        qualifiers = dict(qualifiers or {})
        name = qualifiers.pop("name", None)
        category = qualifiers.pop("category", None)
        course_key = _plain(course_key)
        return [
            block
            for location, block in self._blocks.items()
            if location.course_key == course_key
            and (name is None or location.block_id == name)
            and (category is None or location.block_type == category)
        ]

    def get_parent_location(self, location, **kwargs):  # pylint: disable=unused-argument
        if not isinstance(location, UsageKey) or getattr(location, "deprecated", False):
            raise ItemNotFoundError(location)
        location = _plain(location)
        if location.course_key not in self._courses:
            raise ItemNotFoundError(location.course_key)
        block = self._blocks.get(location)
        return block.parent if block is not None else None

    def get_block_original_usage(self, usage_key):  # pylint: disable=unused-argument
        return None, None


_STORE = None


def modulestore():
    """The process-wide store (``xmodule.modulestore.django.modulestore``)."""
    global _STORE  # pylint: disable=global-statement
    if _STORE is None:
        from stock_lms.fixture_course import build_courses  # pylint: disable=import-outside-toplevel

        _STORE = FixtureModuleStore(build_courses())
    return _STORE
