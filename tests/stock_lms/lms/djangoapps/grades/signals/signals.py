"""Stand-in for edx-platform ``lms/djangoapps/grades/signals/signals.py``.

Plain ``django.dispatch.Signal()`` objects, as in the real module. Senders
pass ``sender=None`` and these keyword arguments:

- ``SCORE_PUBLISHED``: block, user, raw_earned, raw_possible, only_if_higher,
  score_deleted, grader_response;
- ``PROBLEM_RAW_SCORE_CHANGED``: raw_earned, raw_possible, weight, user_id,
  course_id (str), usage_id (str), only_if_higher, modified (datetime),
  score_db_table, score_deleted, grader_response;
- ``PROBLEM_WEIGHTED_SCORE_CHANGED``: weighted_earned, weighted_possible,
  user_id, course_id (str), usage_id (str), only_if_higher, score_deleted,
  modified (datetime), score_db_table, grader_response. (Scores from the
  submissions API also carry ``anonymous_user_id``.)
"""

from django.dispatch import Signal

PROBLEM_RAW_SCORE_CHANGED = Signal()
PROBLEM_WEIGHTED_SCORE_CHANGED = Signal()
SCORE_PUBLISHED = Signal()
SUBSECTION_SCORE_CHANGED = Signal()
SUBSECTION_OVERRIDE_CHANGED = Signal()
