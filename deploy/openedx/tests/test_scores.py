"""The score hook: signal -> on_commit -> Celery task -> ltigate's score API."""

import datetime

import pytest
from django.contrib.auth import get_user_model

from ltigate_openedx import USER_AGENT, platform, scores, tasks, users

from .conftest import ALICE, COURSE, PROBLEM, UNIT, claims_for

pytestmark = pytest.mark.django_db
User = get_user_model()
SECTION = "block-v1:OrgX+CS101+2026+type@sequential+block@s1"
CHAPTER = "block-v1:OrgX+CS101+2026+type@chapter+block@c1"
COURSE_BLOCK = "block-v1:OrgX+CS101+2026+type@course+block@course"
MODIFIED = datetime.datetime(2026, 11, 27, 10, 0, 0, 123456, tzinfo=datetime.timezone.utc)


@pytest.fixture
def alice(fake):
    fake.ancestors[PROBLEM] = [UNIT, SECTION, CHAPTER, COURSE_BLOCK]
    return users.get_or_create_user(claims_for())


def send_signal(user_id, earned=7, possible=10, usage_id=PROBLEM, **extra):
    # The keyword arguments edx-platform sends with PROBLEM_WEIGHTED_SCORE_CHANGED.
    kwargs = dict(
        weighted_earned=earned,
        weighted_possible=possible,
        user_id=user_id,
        anonymous_user_id=None,
        course_id=COURSE,
        usage_id=usage_id,
        only_if_higher=None,
        modified=MODIFIED,
        score_db_table="csm",
        score_deleted=False,
        grader_response=False,
    )
    kwargs.update(extra)
    platform.FAKE_PROBLEM_WEIGHTED_SCORE_CHANGED.send(sender=None, **kwargs)


EXPECTED = {
    "username": ALICE,
    "course_key": COURSE,
    "usage_key": PROBLEM,
    "earned": 7.0,
    "possible": 10.0,
    "modified": "2026-11-27T10:00:00.123Z",
    "ancestors": [UNIT, SECTION, CHAPTER, COURSE_BLOCK],
}


def test_a_score_change_is_posted_after_commit(alice, gateway, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        send_signal(alice.pk)
    # Nothing leaves before the transaction commits.
    assert gateway.score_requests == []
    assert len(callbacks) == 1
    callbacks[0]()
    assert len(gateway.score_requests) == 1
    sent = gateway.score_requests[0]
    assert sent["json"] == EXPECTED
    assert sent["headers"]["Authorization"] == "Bearer test-score-api-token"
    assert sent["headers"]["Content-Type"] == "application/json"
    assert sent["headers"]["User-Agent"] == USER_AGENT


def test_a_rolled_back_change_posts_nothing(alice, gateway):
    from django.db import transaction

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback):
        with transaction.atomic():
            send_signal(alice.pk)
            raise Rollback
    assert gateway.score_requests == []


def test_users_not_created_by_ltigate_are_not_reported(gateway, django_capture_on_commit_callbacks):
    staff = User.objects.create_user("staff", password="x")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        send_signal(staff.pk)
    assert callbacks == [] and gateway.score_requests == []


def test_no_score_api_url_means_no_hook(alice, gateway, settings, django_capture_on_commit_callbacks):
    settings.LTIGATE_SCORE_API_URL = None
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        send_signal(alice.pk)
    assert callbacks == [] and gateway.score_requests == []


def test_a_zero_possible_score_is_not_reported(alice, gateway, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        send_signal(alice.pk, earned=0, possible=0)
        send_signal(alice.pk, earned=None, possible=1)
    assert callbacks == [] and gateway.score_requests == []


def test_transient_failures_are_retried(alice, gateway, django_capture_on_commit_callbacks):
    gateway.score_statuses = [503, 429, 202]
    with django_capture_on_commit_callbacks(execute=True):
        send_signal(alice.pk)
    assert [r["json"] for r in gateway.score_requests] == [EXPECTED] * 3


def test_an_unreachable_gateway_is_retried(alice, gateway, settings):
    settings.LTIGATE_SCORE_API_URL = "http://127.0.0.1:9/scores"
    with pytest.raises(scores.ScoreApiRetry):
        scores.send(EXPECTED)
    assert tasks.post_score.autoretry_for == (scores.ScoreApiRetry,)
    assert tasks.post_score.max_retries == 12
    assert tasks.post_score.acks_late


@pytest.mark.parametrize("status", [400, 404])
def test_final_answers_are_not_retried(alice, gateway, status, django_capture_on_commit_callbacks):
    gateway.score_statuses = [status, 202]
    with django_capture_on_commit_callbacks(execute=True):
        send_signal(alice.pk)
    assert len(gateway.score_requests) == 1


def test_payload_building():
    built = scores.build_payload(
        {k: v for k, v in EXPECTED.items() if k != "ancestors"},
        [UNIT, PROBLEM, SECTION],
    )
    # Exactly the fields of ltigate's docs/grades.md; the block itself is not its own ancestor.
    assert built == dict(EXPECTED, ancestors=[UNIT, SECTION])
    assert list(built) == ["username", "course_key", "usage_key", "earned", "possible", "modified", "ancestors"]


def test_score_event_normalises_values(alice):
    event = scores.score_event(alice.pk, COURSE, PROBLEM, "12", 10, None)
    assert event["earned"] == 10.0 and event["possible"] == 10.0
    assert event["modified"].endswith("Z") and len(event["modified"]) == len("2026-11-27T10:00:00.123Z")
    assert scores.score_event(alice.pk, COURSE, PROBLEM, -1, 10, MODIFIED)["earned"] == 0.0
    assert scores.score_event(alice.pk, COURSE, PROBLEM, "x", 10, MODIFIED) is None


@pytest.mark.parametrize(
    "value, expected",
    [
        (MODIFIED, "2026-11-27T10:00:00.123Z"),
        (datetime.datetime(2026, 11, 27, 10, 0), "2026-11-27T10:00:00.000Z"),
        (
            datetime.datetime(2026, 11, 27, 11, 0, 0, 5000, tzinfo=datetime.timezone(datetime.timedelta(hours=1))),
            "2026-11-27T10:00:00.005Z",
        ),
        ("2026-11-27T10:00:00.123456+00:00", "2026-11-27T10:00:00.123Z"),
    ],
)
def test_timestamps_are_utc_with_milliseconds(value, expected):
    assert scores.timestamp(value) == expected


def test_a_block_without_ancestors_sends_an_empty_list(alice, gateway, fake):
    fake.ancestors.clear()
    tasks.post_score.delay(scores.score_event(alice.pk, COURSE, PROBLEM, 1, 1, MODIFIED))
    assert gateway.score_requests[0]["json"]["ancestors"] == []
