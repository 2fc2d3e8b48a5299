"""Stand-in for edx-platform ``xmodule/html_block.py`` ``HtmlBlock``."""

from django.urls import reverse

from common.djangoapps.static_replace import replace_jump_to_id_urls

from .x_module import Fragment, FixtureBlock


class HtmlBlock(FixtureBlock):
    """Raw course-author HTML.

    At render time the LMS's ``replace_urls`` service rewrites
    ``/jump_to_id/<id>`` links into ``/courses/<course>/jump_to_id/<id>``
    (``common/djangoapps/static_replace/__init__.py``
    ``replace_jump_to_id_urls``, with the base from
    ``reverse('jump_to_id', kwargs={'course_id': ..., 'module_id': ''})``).
    Full asset URLs (``/asset-v1:...``) are left as authored.
    """

    category = "html"
    data = ""

    def student_view(self, context):  # pylint: disable=unused-argument
        course_id = self.location.course_key
        base = reverse("jump_to_id", kwargs={"course_id": str(course_id), "module_id": ""})
        return Fragment(replace_jump_to_id_urls(self.data, course_id, base))
