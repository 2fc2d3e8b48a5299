"""Stand-in for edx-platform ``lms/djangoapps/grades/course_data.py`` ``CourseData``.

The course and its block structure are read lazily: a ``CourseData`` for an
unknown course can be built, and raises ``ItemNotFoundError`` only when its
course or structure is first needed (as ``get_course_blocks`` does).
"""

from xmodule.modulestore.django import modulestore
from xmodule.modulestore.exceptions import ItemNotFoundError


class BlockStructure:
    """The course's block tree (``openedx/core/djangoapps/content/block_structure``):
    ``get_children`` of a key it does not hold is an empty list."""

    def __init__(self, store, course):
        self._store = store
        self.root_block_usage_key = course.location

    def __contains__(self, usage_key):
        return self._store.has_item(usage_key)

    def __getitem__(self, usage_key):
        return self._store.get_item(usage_key)

    def get_children(self, usage_key):
        if not self._store.has_item(usage_key):
            return []
        return list(self._store.get_item(usage_key).children)


class CourseData:
    def __init__(self, user, course=None, collected_block_structure=None, structure=None, course_key=None):
        if not any([course, collected_block_structure, structure, course_key]):
            raise ValueError("You must specify one of course, collected_block_structure, structure, or course_key")
        self.user = user
        self._course = course
        self._structure = structure or collected_block_structure
        self._course_key = course_key

    @property
    def course_key(self):
        if self._course_key is None:
            self._course_key = self._course.id
        return self._course_key

    @property
    def course(self):
        if self._course is None:
            self._course = modulestore().get_course(self.course_key)
            if self._course is None:
                raise ItemNotFoundError(self.course_key)
        return self._course

    @property
    def location(self):
        return self.course.location

    @property
    def structure(self):
        if self._structure is None:
            self._structure = BlockStructure(modulestore(), self.course)
        return self._structure

    effective_structure = structure

    def __str__(self):
        return f"Course: course_key: {self.course_key}"
