"""The score hook: reports a learner's score changes to ltigate's score API.

On PROBLEM_WEIGHTED_SCORE_CHANGED for an account ltigate created, once the
transaction commits, a Celery task (``tasks.post_score``) adds the block's
ancestors and POSTs the score event of ltigate's docs/grades.md to ltigate, retrying with
back-off while ltigate is unreachable.
"""

import datetime
import logging

import requests
from django.db import transaction

from . import USER_AGENT, conf
from .models import LtigateUser

log = logging.getLogger(__name__)


class ScoreApiRetry(Exception):
    """A transient failure: the task tries again later."""


def timestamp(value):
    """RFC 3339 UTC with milliseconds, like 2026-11-27T10:00:00.123Z."""
    if value is None:
        value = datetime.datetime.now(datetime.timezone.utc)
    elif isinstance(value, str):
        value = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    value = value.astimezone(datetime.timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def score_event(user_id, course_id, usage_id, weighted_earned, weighted_possible, modified=None):
    """The score event for one signal, or None when ltigate has no use for it.

    None for accounts ltigate did not create, for missing values, and for a
    possible score of 0 (ltigate refuses those). Earned is kept within
    [0, possible].
    """
    if None in (user_id, course_id, usage_id, weighted_earned, weighted_possible):
        return None
    try:
        earned = float(weighted_earned)
        possible = float(weighted_possible)
    except (TypeError, ValueError):
        return None
    if not possible > 0:
        return None
    # The gateway username, which for the seed plugin's adopted learners is
    # not the LMS username.
    account = LtigateUser.objects.filter(user_id=user_id).only("username").first()
    if account is None:
        return None
    return {
        "username": account.username,
        "course_key": str(course_id),
        "usage_key": str(usage_id),
        "earned": min(max(earned, 0.0), possible),
        "possible": possible,
        "modified": timestamp(modified),
    }


def build_payload(event, ancestors):
    """The body of ``POST /scores``, exactly as ltigate's docs/grades.md describes it."""
    return {
        "username": event["username"],
        "course_key": event["course_key"],
        "usage_key": event["usage_key"],
        "earned": event["earned"],
        "possible": event["possible"],
        "modified": event["modified"],
        "ancestors": [a for a in ancestors if a != event["usage_key"]],
    }


def on_problem_weighted_score_changed(sender, **kwargs):  # pylint: disable=unused-argument
    """Receiver of PROBLEM_WEIGHTED_SCORE_CHANGED."""
    if not conf.get("LTIGATE_SCORE_API_URL"):
        return
    event = score_event(
        kwargs.get("user_id"),
        kwargs.get("course_id"),
        kwargs.get("usage_id"),
        kwargs.get("weighted_earned"),
        kwargs.get("weighted_possible"),
        kwargs.get("modified"),
    )
    if event is None:
        return
    from .tasks import post_score  # pylint: disable=import-outside-toplevel

    transaction.on_commit(lambda: post_score.delay(event))


def send(payload):
    """POSTs one score event to ltigate.

    Returns the HTTP status. Raises ScoreApiRetry for what may succeed later
    (connection errors, timeouts, 5xx, 429, and 401 while a token is being
    fixed); a 404 (no graded launch for this user) or a 400 is final.
    """
    url = conf.get("LTIGATE_SCORE_API_URL")
    token = conf.get("LTIGATE_SCORE_API_TOKEN") or ""
    try:
        response = requests.post(
            url,
            json=payload,
            timeout=conf.get("LTIGATE_SCORE_API_TIMEOUT"),
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": USER_AGENT,
                "Accept": "application/json",
            },
        )
    except requests.RequestException as exc:
        raise ScoreApiRetry(f"score API unreachable: {exc}") from exc
    status = response.status_code
    if status in (200, 201, 202):
        return status
    if status == 404:
        log.info("ltigate has no graded launch for %s; score not sent", payload["username"])
        return status
    if status >= 500 or status in (401, 429):
        raise ScoreApiRetry(f"score API answered {status}")
    log.error("ltigate refused a score event (%s): %s", status, response.text[:500])
    return status
