"""Stand-in for edx-platform ``xmodule/seq_block.py`` ``SequenceBlock``."""

from django.utils.html import escape

from .x_module import Fragment, FixtureBlock


class SequenceBlock(FixtureBlock):
    """A subsection.

    ``descendants_are_gated(context)`` imitates ``SequenceBlock.descendants_are_gated``:
    never for staff (``runtime.user_is_staff``); otherwise True while a
    prerequisite is unmet or, as for ``gated_seq`` here, while the sequence is
    a time-limited exam that the learner has not started
    (``is_time_limited`` and ``_time_limited_student_view()``). This fixture's
    timed exam can never be started from the chromeless view, so its
    descendants stay gated for every non-staff user.
    """

    category = "sequential"
    is_time_limited = False

    def _exam_not_started(self):
        return bool(self.is_time_limited)

    def descendants_are_gated(self, context):  # pylint: disable=unused-argument
        if self.runtime is not None and self.runtime.user_is_staff:
            return False
        if self.is_time_limited and self._exam_not_started():
            return True
        return False

    def student_view(self, context):
        if self.runtime is not None and not self.runtime.user_is_staff and self._exam_not_started():
            # What the timed-exam interstitial shows instead of the content.
            return Fragment(
                '<div id="gated-sequence" class="sequence timed-exam">'
                f"<h2>{escape(self.display_name)}</h2>"
                "<p>This is a timed exam. Start it from the course outline to see its content.</p>"
                "</div>"
            )
        units = "".join(child.render("student_view", context).content for child in self.get_children())
        return Fragment(f'<div class="sequence" data-id="{escape(str(self.location))}">{units}</div>')
