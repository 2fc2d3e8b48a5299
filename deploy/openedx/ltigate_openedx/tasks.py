"""The Celery task that delivers score events to ltigate."""

from celery import shared_task

from . import conf, platform, scores


@shared_task(
    name="ltigate_openedx.post_score",
    autoretry_for=(scores.ScoreApiRetry,),
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    # Read when the LMS (or its Celery worker) loads the app.
    max_retries=conf.get("LTIGATE_SCORE_MAX_RETRIES"),
    acks_late=True,
    ignore_result=True,
)
def post_score(event):
    """Adds the block's ancestors to ``event`` and sends it to ltigate.

    Transient failures retry LTIGATE_SCORE_MAX_RETRIES times (default 12),
    with a jittered back-off that doubles from 5 s up to 10 min per wait:
    a report outlasts a gateway restart or a long outage.
    """
    try:
        ancestors = platform.get().block_ancestors(event["usage_key"])
    except (platform.NotFound, platform.InvalidKey):
        ancestors = []
    except Exception as exc:  # pylint: disable=broad-except
        raise scores.ScoreApiRetry(f"ancestors of {event['usage_key']}: {exc}") from exc
    return scores.send(scores.build_payload(event, ancestors))
