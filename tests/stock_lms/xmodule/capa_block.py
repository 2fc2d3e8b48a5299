"""Stand-in for edx-platform ``xmodule/capa_block.py`` ``ProblemBlock`` (one text response).

What matters to a gateway, imitated from the real block:

- its AJAX handler is ``xmodule_handler`` with the capa action as the suffix
  (``XModuleToXBlockMixin.xmodule_handler`` -> ``handle_ajax(suffix, request.POST)``),
  so the browser posts ``.../handler/xmodule_handler/problem_check``;
- ``handle_ajax`` answers JSON text with ``progress_changed``, ``current_score``,
  ``total_possible`` (*weighted*, from ``get_display_progress``) and
  ``attempts_used``; an unknown action is answered
  ``"Error: <action> is not a known capa action"`` (HTTP 200);
- ``submit_problem`` stores the learner's state and publishes a ``grade``
  event with the *raw* score (``_publish_grade``: ``value``/``max_value``), which
  the LMS runtime turns into ``SCORE_PUBLISHED`` and, through the grades
  handlers, ``PROBLEM_WEIGHTED_SCORE_CHANGED``.
"""

import json

from django.http import HttpResponse
from django.utils.html import escape

from lms.djangoapps.grades.scores import weighted_score

from .exceptions import ProcessingError
from .x_module import Fragment, FixtureBlock, handler

KNOWN_ACTIONS = ("problem_check", "problem_get")


class ProblemBlock(FixtureBlock):
    """A problem with one text input; the answer ``correct`` earns its full score."""

    category = "problem"
    has_score = True
    weight = None
    question = ""
    correct_answer = "correct"

    def max_score(self):
        """Raw possible: one point per response (``ProblemBlock.max_score``)."""
        return 1

    @property
    def answer_id(self):
        # capa names inputs <problem html_id>_2_1, _2_2, ...
        return f"{self.location.html_id()}_2_1"

    # --- learner state (StudentModule.state, like the courseware field data) ---

    def _user(self):
        user = self.runtime.user
        if user is None or not user.is_authenticated or not getattr(user, "known", True):
            return None
        return user

    def _module(self, create=False):
        from lms.djangoapps.courseware.models import StudentModule  # pylint: disable=import-outside-toplevel

        user = self._user()
        if user is None:
            return None
        key = dict(student=user, module_state_key=self.location, course_id=self.location.course_key)
        if create:
            module, _ = StudentModule.objects.get_or_create(
                defaults={"module_type": self.category, "state": "{}"}, **key
            )
            return module
        return StudentModule.objects.filter(**key).first()

    def _state(self):
        module = self._module()
        return json.loads(module.state or "{}") if module is not None else {}

    @property
    def score(self):
        """(raw_earned, raw_possible): the stored score, or 0 of the max before an attempt."""
        stored = self._state().get("score")
        if stored:
            return float(stored["raw_earned"]), float(stored["raw_possible"])
        return 0.0, float(self.max_score())

    def get_display_progress(self):
        """The *weighted* (current_score, total_possible) shown to the learner."""
        raw_earned, raw_possible = self.score
        return weighted_score(raw_earned, raw_possible, self.weight)

    # --- views and handlers ---

    def handler_url(self, handler_name):
        return self.runtime.handler_url(self, handler_name)

    def student_view(self, context):  # pylint: disable=unused-argument
        ajax_url = self.handler_url("xmodule_handler")
        check_url = f"{ajax_url}/problem_check"
        earned, possible = self.get_display_progress()
        answer = escape(self.answer_id)
        html = (
            f'<div class="problem" id="problem_{escape(self.location.html_id())}" '
            f'data-url="{escape(ajax_url)}">'
            f"<h3>{escape(self.display_name)} ({earned:g}/{possible:g} points)</h3>"
            f"<p>{escape(self.question)}</p>"
            f'<input type="text" id="input_{answer}" name="input_{answer}" value="correct">'
            '<button type="button" id="problem-submit">Submit</button>'
            '<span id="problem-result"></span>'
            "</div>"
            "<script>"
            "document.getElementById('problem-submit').addEventListener('click', function () {"
            f"  var value = document.getElementById('input_{answer}').value;"
            f"  stockLmsPost({json.dumps(check_url)}, 'input_{answer}=' + encodeURIComponent(value),"
            "    'problem-result');"
            "});"
            "</script>"
        )
        return Fragment(html)

    @handler
    def xmodule_handler(self, request, suffix=""):
        """``XModuleToXBlockMixin.xmodule_handler``: the capa action is the suffix."""
        body = self.handle_ajax(suffix, request.POST)
        return HttpResponse(body, content_type="application/json; charset=UTF-8")

    def handle_ajax(self, dispatch, data):
        if dispatch not in KNOWN_ACTIONS:
            return f"Error: {dispatch} is not a known capa action"
        before_attempts = self._state().get("attempts", 0)
        try:
            if dispatch == "problem_check":
                result = self.submit_problem(data)
            else:
                result = {"html": self.student_view({}).content}
        except Exception as exc:  # pylint: disable=broad-except
            raise ProcessingError(
                "We're sorry, there was an error with processing your request. "
                "Please try reloading your page and trying again."
            ) from exc
        after_attempts = self._state().get("attempts", 0)
        current_score, total_possible = self.get_display_progress()
        result.update(
            {
                "progress_changed": after_attempts != before_attempts,
                "current_score": current_score,
                "total_possible": total_possible,
                "attempts_used": after_attempts,
            }
        )
        return json.dumps(result)

    def submit_problem(self, data):
        answers = {key[len("input_"):]: value for key, value in data.items() if key.startswith("input_")}
        correct = answers.get(self.answer_id, "").strip().lower() == self.correct_answer
        raw_earned, raw_possible = (1.0 if correct else 0.0), float(self.max_score())
        module = self._module(create=True)
        if module is not None:
            state = json.loads(module.state or "{}")
            state.update(
                {
                    "attempts": state.get("attempts", 0) + 1,
                    "student_answers": answers,
                    "correct_map": {self.answer_id: {"correctness": "correct" if correct else "incorrect"}},
                    "score": {"raw_earned": raw_earned, "raw_possible": raw_possible},
                    "done": True,
                }
            )
            module.state = json.dumps(state)
            module.save()
        # ProblemBlock._publish_grade: the runtime receives the raw score.
        self.runtime.publish(self, "grade", {"value": raw_earned, "max_value": raw_possible, "only_if_higher": False})
        verdict = "correct" if correct else "incorrect"
        return {"success": verdict, "contents": f'<div class="feedback {verdict}">{verdict}</div>'}
