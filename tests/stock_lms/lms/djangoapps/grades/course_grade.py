"""Stand-in for edx-platform ``lms/djangoapps/grades/course_grade.py``.

``CourseGradeBase.score_for_block(location)`` returns ``(earned, possible)``,
weighted: a problem's own score from ``problem_scores``, otherwise the sum
over ``course_data.structure.get_children(location)``, so a block the
structure does not hold scores ``(0.0, 0.0)``. There is no
``score_for_module``: the platform renamed it.

``ZeroCourseGrade`` (no stored grade yet) gives every problem 0 earned of its
weighted possible; ``CourseGrade`` reads the learner's stored problem scores.
"""

from lms.djangoapps.courseware.models import StudentModule
from xmodule.graders import ProblemScore

from .scores import weighted_score


class CourseGradeBase:
    def __init__(self, user, course_data, percent=0.0, letter_grade=None, passed=False,
                 force_update_subsections=False, last_updated=None):
        self.user = user
        self.course_data = course_data
        self.percent = percent
        self.passed = passed
        self.letter_grade = letter_grade or None
        self.force_update_subsections = force_update_subsections
        self.last_updated = last_updated

    def __str__(self):
        return f"Course Grade: percent: {self.percent}, letter_grade: {self.letter_grade}, passed: {self.passed}"

    @property
    def attempted(self):
        return False

    def _problems_under(self, location):
        structure = self.course_data.structure
        for child in structure.get_children(location):
            block = structure[child]
            if getattr(block, "has_score", False):
                yield block
            else:
                yield from self._problems_under(child)

    @property
    def problem_scores(self):
        """{problem location: ProblemScore}, over the course's subsections."""
        if not hasattr(self, "_problem_scores"):
            scores = {}
            structure = self.course_data.structure
            for chapter in structure.get_children(self.course_data.location):
                for subsection in structure.get_children(chapter):
                    for block in self._problems_under(subsection):
                        scores[block.location] = self._problem_score(block)
            self._problem_scores = scores  # pylint: disable=attribute-defined-outside-init
        return self._problem_scores

    def score_for_block(self, location):
        if location in self.problem_scores:
            score = self.problem_scores[location]
            return score.earned, score.possible
        earned, possible = 0.0, 0.0
        for child in self.course_data.structure.get_children(location):
            child_earned, child_possible = self.score_for_block(child)
            earned += child_earned
            possible += child_possible
        return earned, possible

    def _problem_score(self, block):
        raise NotImplementedError


class ZeroCourseGrade(CourseGradeBase):
    """No problem attempted, as far as stored grades go: every problem scores 0."""

    def _problem_score(self, block):
        raw_possible = float(block.max_score())
        weighted_earned, weighted_possible = weighted_score(0.0, raw_possible, block.weight)
        return ProblemScore(0.0, raw_possible, weighted_earned, weighted_possible, block.weight)


class CourseGrade(CourseGradeBase):
    """A stored grade: problem scores come from the learner's StudentModule rows."""

    @property
    def attempted(self):
        return True

    def _problem_score(self, block):
        module = StudentModule.objects.filter(
            student_id=self.user.id, module_state_key=block.location, course_id=block.location.course_key
        ).first()
        if module is not None and module.max_grade is not None:
            raw_earned, raw_possible = float(module.grade or 0.0), float(module.max_grade)
        else:
            raw_earned, raw_possible = 0.0, float(block.max_score())
        weighted_earned, weighted_possible = weighted_score(raw_earned, raw_possible, block.weight)
        return ProblemScore(raw_earned, raw_possible, weighted_earned, weighted_possible, block.weight)

    def update(self, visible_grades_only=False, has_staff_access=False):  # pylint: disable=unused-argument
        earned = sum(score.earned for score in self.problem_scores.values())
        possible = sum(score.possible for score in self.problem_scores.values())
        self.percent = round(earned / possible, 2) if possible else 0.0
        cutoffs = getattr(self.course_data.course, "grade_cutoffs", {}) or {}
        self.letter_grade = next(
            (grade for grade, cutoff in sorted(cutoffs.items(), key=lambda kv: -kv[1]) if self.percent >= cutoff), None
        )
        nonzero = [cutoff for cutoff in cutoffs.values() if cutoff > 0]
        self.passed = bool(nonzero) and self.percent >= min(nonzero)
        return self
