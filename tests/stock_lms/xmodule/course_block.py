"""Stand-in for edx-platform ``xmodule/course_block.py`` (the fields the access checks read)."""

from .x_module import Fragment, FixtureBlock

# xmodule/course_block.py
COURSE_VISIBILITY_PRIVATE = "private"
COURSE_VISIBILITY_PUBLIC_OUTLINE = "public_outline"
COURSE_VISIBILITY_PUBLIC = "public"


class CourseBlock(FixtureBlock):
    """The course: start/end, enrollment window, visibility (``CourseBlock`` fields)."""

    category = "course"

    @property
    def id(self):  # pylint: disable=invalid-name
        return self.location.course_key

    def has_ended(self):
        return False

    def student_view(self, context):  # pylint: disable=unused-argument
        return Fragment(f"<div class=\"course\">{self.display_name}</div>")


class ChapterBlock(FixtureBlock):
    """A section (``chapter``): in the LMS a ``SequenceBlock`` subclass; it only holds sequentials."""

    category = "chapter"

    def student_view(self, context):
        return Fragment("".join(child.render("student_view", context).content for child in self.get_children()))
