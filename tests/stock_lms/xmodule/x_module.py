"""The block base the fixture course is made of (stand-in for the XBlock runtime).

Imitates, in a few lines each, what the LMS's blocks expose to the views the
gateway meets: ``location``, ``get_parent()`` (``xmodule/x_module.py``
``XModuleMixin.get_parent``), ``render(view, context)`` returning a fragment
(``web_fragments.fragment.Fragment``), and ``handle(handler, request, suffix)``
dispatching to handler methods, raising ``NoSuchHandlerError`` for unknown
ones (``xblock/core.py`` ``XBlock.handle``).

A block in the modulestore is a descriptor; ``bind_for_student`` returns a
copy bound to a runtime that knows the user and the request, as
``lms/djangoapps/courseware/block_render.py`` ``get_block_for_descriptor``
binds one for the requesting user.
"""

import copy

STUDENT_VIEW = "student_view"
PUBLIC_VIEW = "public_view"


class NoSuchHandlerError(Exception):
    """Imitates ``xblock.exceptions.NoSuchHandlerError``."""


class NoSuchViewError(Exception):
    """Imitates ``xblock.exceptions.NoSuchViewError``."""


def handler(func):
    """Marks a method as an XBlock handler (``xblock/core.py`` ``XBlock.handler``)."""
    func._is_xblock_handler = True  # pylint: disable=protected-access
    return func


class Fragment:
    """The rendered HTML of a block (``web_fragments.fragment.Fragment``, content only)."""

    def __init__(self, content=""):
        self.content = content

    def body_html(self):
        return self.content


class FixtureBlock:
    """A block of the fixture course."""

    category = None
    has_score = False

    def __init__(self, location, display_name, children=(), **fields):
        self.location = location
        self.scope_ids_usage_id = location
        self.display_name = display_name
        self.child_blocks = list(children)
        self.children = [child.location for child in self.child_blocks]
        self.parent = None
        self.runtime = None
        for name, value in fields.items():
            setattr(self, name, value)

    @property
    def display_name_with_default(self):
        return self.display_name or self.location.block_id

    def bind_for_student(self, runtime):
        bound = copy.copy(self)
        bound.runtime = runtime
        return bound

    def get_parent(self):
        """The parent block, or None for the course (``XModuleMixin.get_parent``)."""
        if self.parent is None:
            return None
        from xmodule.modulestore.django import modulestore  # pylint: disable=import-outside-toplevel

        return modulestore().get_item(self.parent)

    def get_children(self):
        """The children, bound to this block's runtime when it has one."""
        if self.runtime is not None:
            return [child for child in (self.runtime.get_block(key) for key in self.children) if child]
        from xmodule.modulestore.django import modulestore  # pylint: disable=import-outside-toplevel

        return [modulestore().get_item(key) for key in self.children]

    def render(self, view, context=None):
        method = getattr(self, view, None)
        if method is None:
            raise NoSuchViewError(view)
        return method(context or {})

    def public_view(self, context):  # pylint: disable=unused-argument
        """``XBlock`` default public view: a message that the content needs a login."""
        return Fragment('<div class="page-banner">This content requires you to sign in and enroll.</div>')

    def handle(self, handler_name, request, suffix=""):
        method = getattr(self, handler_name, None)
        if method is None or not getattr(method, "_is_xblock_handler", False):
            raise NoSuchHandlerError(handler_name)
        return method(request, suffix)

    def __repr__(self):
        return f"<{type(self).__name__} {self.location}>"
