"""ltigate's LMS-side app (deploy/openedx), installed as a plugin in the stock LMS,
running through its real seam (``LTIGATE_PLATFORM = "openedx"``) against the
stand-ins, with real signed assertions and a real score API server."""

import json
import random
import string
from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model

from common.djangoapps.student.models import CourseEnrollment, UserProfile
from lti_1p3_provider.models import EDX_LTI_EMAIL_DOMAIN, LtiProfile
from stock_lms.fixture_course import CHAPTER, COURSE, COURSE_ID, COURSE_KEY, GATED_SEQ, GATED_UNIT, LOCKED_ASSET, P1, SEQ1, UNIT1
from testsupport import CLIENT_ID, GATEWAY_ORIGIN, LMS_ORIGIN, PLATFORM, SCORE_TOKEN, DirectClient, GatewayClient, gateway_username

pytestmark = pytest.mark.django_db

DISPLAY = f"/ltigate/xblock/{UNIT1}"
HANDLER = f"/courses/{COURSE_ID}/xblock/{P1}/handler/xmodule_handler/problem_check"
ANSWER = {f"input_{P1.html_id()}_2_1": "correct"}


@pytest.fixture
def default_enrollment(settings):
    """LTIGATE_ENROLLMENT_MODE unset: the app's default."""
    if hasattr(settings, "LTIGATE_ENROLLMENT_MODE"):
        del settings.LTIGATE_ENROLLMENT_MODE


@pytest.fixture
def no_enrollment(settings):
    settings.LTIGATE_ENROLLMENT_MODE = "none"


def user_named(username):
    return get_user_model().objects.get(username=username)


def launch(mint, lti_sub="42"):
    """A browser on ltigate's host that opened the launched unit; returns (client, username)."""
    client = GatewayClient(assertion=mint(lti_sub))
    response = client.get(DISPLAY, HTTP_ACCEPT="text/html")
    assert response.status_code == 200, response.content[:500]
    username = gateway_username(lti_sub)
    assert f'<div id="ltigate-user">{username}</div>' in response.content.decode()
    return client, username


def post_problem(client, origin=GATEWAY_ORIGIN):
    return client.post(HANDLER, ANSWER, HTTP_ORIGIN=origin, HTTP_X_CSRFTOKEN=client.csrf_token(), HTTP_ACCEPT="*/*")


def test_gateway_display_renders_for_an_unenrolled_learner(mint, no_enrollment):
    client, username = launch(mint)
    user = user_named(username)
    assert not CourseEnrollment.is_enrolled(user, COURSE_KEY)
    # The stock view and the locked asset still want an enrollment.
    assert client.get(f"/xblock/{UNIT1}").status_code == 404
    assert client.get(f"/{LOCKED_ASSET}").status_code == 403


def test_gateway_display_enrolls_in_audit_by_default(mint, default_enrollment):
    client, username = launch(mint)
    enrollment = CourseEnrollment.objects.get(user=user_named(username), course_id=COURSE_KEY)
    assert enrollment.is_active and enrollment.mode == "audit"
    locked = client.get(f"/{LOCKED_ASSET}")
    assert locked.status_code == 200 and locked.content.startswith(b"\x89PNG")
    assert client.get(f"/xblock/{UNIT1}").status_code == 200
    # A second launch of an enrolled learner changes nothing (and raises nothing).
    launch(mint)
    assert CourseEnrollment.objects.filter(user=user_named(username)).count() == 1


def test_gateway_display_of_a_gated_unit_redirects_to_its_sequence(mint, default_enrollment):
    client = GatewayClient(assertion=mint(usage_key=str(GATED_UNIT)))
    response = client.get(f"/ltigate/xblock/{GATED_UNIT}")
    assert response.status_code == 302
    assert response["Location"] == f"/xblock/{GATED_SEQ}"


def test_handler_post_from_the_gateway_origin_passes_csrf(mint, no_enrollment):
    client, _ = launch(mint)
    response = post_problem(client)
    assert response.status_code == 200, response.content[:500]
    body = json.loads(response.content)
    assert (body["current_score"], body["total_possible"]) == (2.0, 2.0)
    event = client.post("/event", {"event_type": "probe", "event": "{}", "page": DISPLAY},
                        HTTP_ORIGIN=GATEWAY_ORIGIN, HTTP_X_CSRFTOKEN=client.csrf_token())
    assert event.status_code == 200 and event.content == b"success"


def test_handler_post_from_another_origin_fails(mint, no_enrollment):
    client, _ = launch(mint)
    assert post_problem(client, origin="https://evil.test").status_code == 403
    assert post_problem(client, origin="null").status_code == 403
    # The gateway's origin without an assertion is not the gateway.
    client.assertion = None
    assert post_problem(client).status_code == 403


def test_handler_post_without_the_csrf_token_fails(mint, no_enrollment):
    client, _ = launch(mint)
    assert client.post(HANDLER, ANSWER, HTTP_ORIGIN=GATEWAY_ORIGIN).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_problem_score_reaches_the_score_api(mint, gateway, no_enrollment):
    client, username = launch(mint)
    assert post_problem(client).status_code == 200
    assert len(gateway.score_requests) == 1, gateway.score_requests
    request = gateway.score_requests[0]
    assert request["headers"]["Authorization"] == f"Bearer {SCORE_TOKEN}"
    event = request["json"]
    assert event["username"] == username
    assert event["course_key"] == COURSE_ID and event["usage_key"] == str(P1)
    assert (event["earned"], event["possible"]) == (2.0, 2.0)
    assert event["ancestors"] == [str(UNIT1), str(SEQ1), str(CHAPTER), str(COURSE)]


def test_composite_score_comes_from_score_for_block(mint, no_enrollment):
    client, username = launch(mint)
    service = GatewayClient(assertion=mint(launch=False))
    url = "/ltigate/score?" + urlencode({"user": username, "usage_key": str(UNIT1), "course_key": COURSE_ID})
    before = service.get(url)
    assert before.status_code == 200, before.content
    assert json.loads(before.content) == {"earned": 0.0, "possible": 2.0}
    assert "sessionid" not in before.cookies
    assert post_problem(client).status_code == 200
    assert json.loads(service.get(url).content) == {"earned": 2.0, "possible": 2.0}
    problem = GatewayClient(assertion=mint(launch=False, usage_key=str(P1)))
    problem_url = "/ltigate/score?" + urlencode({"user": username, "usage_key": str(P1)})
    assert json.loads(problem.get(problem_url).content) == {"earned": 2.0, "possible": 2.0}


def test_a_gateway_session_replayed_without_the_assertion_is_anonymous(mint, no_enrollment):
    client, username = launch(mint)
    assert json.loads(client.get("/api/user/v1/me").content) == {"username": username}
    cookies = client.cookies
    client.assertion = None
    assert client.get("/api/user/v1/me").status_code == 401
    # Nor on the LMS's own host.
    direct = DirectClient()
    direct.cookies = cookies
    assert direct.get("/api/user/v1/me").status_code == 401


def _direct_login():
    user = get_user_model().objects.create_user("alice", "alice@example.com", "pw-12345")
    UserProfile.objects.create(user=user, name="Alice")
    client = DirectClient()
    client.get("/login")
    response = client.post("/login", {"username": "alice", "password": "pw-12345",
                                      "csrfmiddlewaretoken": client.csrf_token()}, HTTP_ORIGIN=LMS_ORIGIN)
    assert response.status_code == 302
    return client


def test_a_direct_login_survives(mint, no_enrollment):
    direct = _direct_login()
    launch(mint, "42")
    launch(mint, "43")
    for _ in range(2):
        response = direct.get("/api/user/v1/me")
        assert response.status_code == 200 and json.loads(response.content) == {"username": "alice"}


def test_an_assertion_over_a_direct_session_logs_the_gateway_learner_in(mint, no_enrollment):
    direct = _direct_login()
    client = GatewayClient(assertion=mint("42"))
    client.cookies = direct.cookies  # a shared LMS cookie reaching the LMS with an assertion
    response = client.get(DISPLAY)
    assert response.status_code == 200, response.status_code
    assert f'<div id="ltigate-user">{gateway_username("42")}</div>' in response.content.decode()


def _seed_user(lti_sub, profile=True):
    """A learner of the seed plugin: its create_edx_user, a UserProfile as its launch makes, an LtiProfile."""
    username = "".join(random.SystemRandom().choice(string.ascii_letters + string.digits) for _ in range(30))
    user = get_user_model().objects.create(username=username, email=f"{username}@{EDX_LTI_EMAIL_DOMAIN}",
                                           first_name="Seed", last_name=lti_sub)
    user.set_unusable_password()
    user.save()
    if profile:
        UserProfile.objects.create(user=user, name=f"Seed {lti_sub}")
    LtiProfile.objects.create(user=user, platform_id=PLATFORM, client_id=CLIENT_ID, subject_id=lti_sub,
                              email=f"seed{lti_sub}@canvas.test")
    return user


@pytest.mark.parametrize("profile", [True, False], ids=["seed-with-profile", "older-seed-without-profile"])
def test_a_seed_learner_keeps_their_account(mint, default_enrollment, profile):
    seed_user = _seed_user("77", profile=profile)
    client = GatewayClient(assertion=mint("77"))
    response = client.get(DISPLAY)
    assert response.status_code == 200, response.content[:500]
    assert f'<div id="ltigate-user">{seed_user.username}</div>' in response.content.decode()
    assert not get_user_model().objects.filter(username=gateway_username("77")).exists()
    assert json.loads(client.get("/api/user/v1/me").content) == {"username": seed_user.username}


def test_an_assertion_signed_by_another_key_is_refused(mint, gateway_key, no_enrollment):
    token = mint("42")
    header, payload, signature = token.split(".")
    forged = ".".join([header, payload, signature[::-1]])
    assert GatewayClient(assertion=forged).get(DISPLAY).status_code == 403
