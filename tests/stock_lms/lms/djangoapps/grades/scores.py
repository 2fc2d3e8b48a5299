"""Stand-in for edx-platform ``lms/djangoapps/grades/scores.py``."""


def weighted_score(raw_earned, raw_possible, weight):
    """(weighted earned, weighted possible): scaled so possible equals ``weight``;
    unscaled when there is no weight or the raw possible is 0."""
    assert raw_possible is not None
    if weight is None or raw_possible == 0:
        return raw_earned, raw_possible
    return float(raw_earned) * weight / raw_possible, float(weight)
