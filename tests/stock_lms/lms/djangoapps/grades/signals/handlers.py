"""Stand-in for edx-platform ``lms/djangoapps/grades/signals/handlers.py``.

The chain a capa problem's submission goes through:

``SCORE_PUBLISHED`` -> ``score_published_handler`` (stores the raw score in
StudentModule with ``set_score``, sends ``PROBLEM_RAW_SCORE_CHANGED``) ->
``problem_raw_score_changed_handler`` (weights it, sends
``PROBLEM_WEIGHTED_SCORE_CHANGED``) -> ``enqueue_subsection_update`` (queues
``recalculate_subsection_grade_v3`` with a countdown; Celery is eager here, so
the course grade is stored before the request ends).
"""

import logging

from django.dispatch import receiver

from lms.djangoapps.courseware.model_data import get_score, set_score

from ..constants import ScoreDatabaseTableEnum
from ..scores import weighted_score
from ..tasks import RECALCULATE_GRADE_DELAY_SECONDS, recalculate_subsection_grade_v3
from .signals import PROBLEM_RAW_SCORE_CHANGED, PROBLEM_WEIGHTED_SCORE_CHANGED, SCORE_PUBLISHED

log = logging.getLogger(__name__)


@receiver(SCORE_PUBLISHED)
def score_published_handler(sender, block, user, raw_earned, raw_possible, only_if_higher, **kwargs):  # pylint: disable=unused-argument
    """Stores the score unless ``only_if_higher`` and the stored one is higher."""
    if only_if_higher:
        previous = get_score(user.id, block.location)
        if previous is not None and previous.max_grade:
            if previous.grade / previous.max_grade > (raw_earned / raw_possible if raw_possible else 0):
                log.warning("Grades: rescore of %s for %s is not higher than the previous one", block.location, user)
                return False
    modified = set_score(user.id, block.location, raw_earned, raw_possible)
    PROBLEM_RAW_SCORE_CHANGED.send(
        sender=None,
        raw_earned=raw_earned,
        raw_possible=raw_possible,
        weight=getattr(block, "weight", None),
        user_id=user.id,
        course_id=str(block.location.course_key),
        usage_id=str(block.location),
        only_if_higher=only_if_higher,
        modified=modified,
        score_db_table=ScoreDatabaseTableEnum.courseware_student_module,
        score_deleted=kwargs.get("score_deleted", False),
        grader_response=kwargs.get("grader_response", False),
    )
    return True


@receiver(PROBLEM_RAW_SCORE_CHANGED)
def problem_raw_score_changed_handler(sender, **kwargs):  # pylint: disable=unused-argument
    if kwargs["raw_possible"] is not None:
        weighted_earned, weighted_possible = weighted_score(kwargs["raw_earned"], kwargs["raw_possible"], kwargs["weight"])
    else:
        weighted_earned, weighted_possible = kwargs["raw_earned"], kwargs["raw_possible"]
    PROBLEM_WEIGHTED_SCORE_CHANGED.send(
        sender=None,
        weighted_earned=weighted_earned,
        weighted_possible=weighted_possible,
        user_id=kwargs["user_id"],
        course_id=kwargs["course_id"],
        usage_id=kwargs["usage_id"],
        only_if_higher=kwargs["only_if_higher"],
        score_deleted=kwargs.get("score_deleted", False),
        modified=kwargs["modified"],
        score_db_table=kwargs["score_db_table"],
        grader_response=kwargs.get("grader_response", False),
    )


@receiver(PROBLEM_WEIGHTED_SCORE_CHANGED)
def enqueue_subsection_update(sender, **kwargs):  # pylint: disable=unused-argument
    recalculate_subsection_grade_v3.apply_async(
        kwargs=dict(
            user_id=kwargs["user_id"],
            course_id=kwargs["course_id"],
            usage_id=kwargs["usage_id"],
            only_if_higher=kwargs.get("only_if_higher"),
            expected_modified_time=kwargs["modified"].timestamp(),
            score_deleted=kwargs.get("score_deleted", False),
        ),
        countdown=RECALCULATE_GRADE_DELAY_SECONDS,
    )
