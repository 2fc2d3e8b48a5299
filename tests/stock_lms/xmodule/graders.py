"""Stand-in for edx-platform ``xmodule/graders.py`` ``ProblemScore``."""


class ProblemScore:
    """One problem's score: ``earned``/``possible`` are the *weighted* values."""

    def __init__(self, raw_earned, raw_possible, weighted_earned, weighted_possible, weight, graded=True,
                 first_attempted=None):
        self.raw_earned = raw_earned
        self.raw_possible = raw_possible
        self.earned = weighted_earned
        self.possible = weighted_possible
        self.weight = weight
        self.graded = graded
        self.first_attempted = first_attempted

    def __repr__(self):
        return f"ProblemScore(earned={self.earned}, possible={self.possible})"
