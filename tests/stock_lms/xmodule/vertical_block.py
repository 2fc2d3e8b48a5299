"""Stand-in for edx-platform ``xmodule/vertical_block.py`` ``VerticalBlock``."""

from django.utils.html import escape

from .x_module import Fragment, FixtureBlock


def wrap_xblock(block, view, content):
    """The ``<div class="xblock ...">`` wrapper the LMS puts around every block
    (``openedx/core/lib/xblock_utils/__init__.py`` ``wrap_xblock``)."""
    usage_id = escape(str(block.location))
    return (
        f'<div class="xblock xblock-{view} xblock-{view}-{block.category}" '
        f'data-usage-id="{usage_id}" data-block-type="{block.category}">{content}</div>'
    )


class VerticalBlock(FixtureBlock):
    """A unit: renders its children in order, each in its xblock wrapper."""

    category = "vertical"

    def student_view(self, context):
        parts = []
        for child in self.get_children():
            fragment = child.render("student_view", context)
            parts.append(f'<div class="vert" data-id="{escape(str(child.location))}">'
                         f"{wrap_xblock(child, 'student_view', fragment.content)}</div>")
        return Fragment(f'<div class="vert-mod">{"".join(parts)}</div>')
