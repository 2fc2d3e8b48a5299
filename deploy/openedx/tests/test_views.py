"""The display view and the composite score endpoint."""

from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from ltigate_openedx import users

from .conftest import ALICE, BOB, COURSE, PROBLEM, UNIT, claims_for

pytestmark = pytest.mark.django_db
User = get_user_model()


@pytest.fixture
def client():
    return Client()


def test_display_renders_the_asserted_block_for_the_sub_user(client, mint, fake):
    response = client.get(f"/ltigate/xblock/{UNIT}", HTTP_X_LTIGATE_ASSERTION=mint())
    assert response.status_code == 200
    assert response.content.decode() == f"block {UNIT} for {ALICE}"
    assert fake.rendered == [(ALICE, UNIT)]
    # Exempt from X-Frame-Options: the platform shows it in an iframe.
    assert "X-Frame-Options" not in response.headers


def test_display_refuses_a_block_other_than_the_asserted_one(client, mint, fake):
    response = client.get(f"/ltigate/xblock/{PROBLEM}", HTTP_X_LTIGATE_ASSERTION=mint())
    assert response.status_code == 403
    assert fake.rendered == []


def test_display_refuses_requests_that_did_not_come_through_the_gateway(client, mint, fake):
    # Even a session logged in through the gateway needs the header.
    client.get(f"/ltigate/xblock/{UNIT}", HTTP_X_LTIGATE_ASSERTION=mint())
    response = client.get(f"/ltigate/xblock/{UNIT}")
    assert response.status_code == 403
    assert len(fake.rendered) == 1


def test_display_refuses_a_bad_assertion(client, mint, fake):
    response = client.get(f"/ltigate/xblock/{UNIT}", HTTP_X_LTIGATE_ASSERTION=mint(key="attacker"))
    assert response.status_code == 403
    assert fake.rendered == []


def test_display_is_get_only(client, mint):
    response = client.post(f"/ltigate/xblock/{UNIT}", HTTP_X_LTIGATE_ASSERTION=mint())
    assert response.status_code == 405


def score_url(user=ALICE, usage_key=UNIT, **extra):
    query = {"user": user, "usage_key": usage_key, **extra}
    return "/ltigate/score?" + urlencode({k: v for k, v in query.items() if v is not None})


def service_assertion(mint, sub=ALICE, usage_key=UNIT):
    """What ltigate sends for a composite score: no PII, no roles."""
    return mint(
        sub=sub,
        usage_key=usage_key,
        email=None,
        name=None,
        given_name=None,
        family_name=None,
        lti={"issuer": "https://canvas.test", "client_id": "c1", "deployment_id": "", "sub": "42"},
    )


@pytest.fixture
def alice(fake):
    user = users.get_or_create_user(claims_for())
    fake.scores[(ALICE, UNIT)] = (3.0, 4.0)
    return user


def test_composite_score_answers_earned_and_possible(client, mint, alice):
    response = client.get(score_url(course_key=COURSE), HTTP_X_LTIGATE_ASSERTION=service_assertion(mint))
    assert response.status_code == 200
    assert response.json() == {"earned": 3.0, "possible": 4.0}
    # Server to server: no login, no session cookie.
    assert "sessionid" not in response.cookies


def test_composite_score_needs_an_assertion(client, alice):
    response = client.get(score_url())
    assert response.status_code == 401


def test_composite_score_refuses_a_bad_assertion(client, mint, alice):
    response = client.get(score_url(), HTTP_X_LTIGATE_ASSERTION=mint(key="attacker"))
    assert response.status_code == 403


def test_composite_score_refuses_another_users_assertion(client, mint, alice):
    users.get_or_create_user(claims_for(BOB))
    response = client.get(score_url(user=ALICE), HTTP_X_LTIGATE_ASSERTION=service_assertion(mint, sub=BOB))
    assert response.status_code == 403
    assert response.json()["field"] == "user"


def test_composite_score_refuses_content_other_than_the_asserted(client, mint, alice, fake):
    fake.scores[(ALICE, PROBLEM)] = (1.0, 1.0)
    response = client.get(score_url(usage_key=PROBLEM), HTTP_X_LTIGATE_ASSERTION=service_assertion(mint))
    assert response.status_code == 403
    assert response.json()["field"] == "usage_key"


def test_composite_score_validates_its_parameters(client, mint, alice):
    token = service_assertion(mint)
    assert client.get(score_url(user=None), HTTP_X_LTIGATE_ASSERTION=token).status_code == 400
    assert client.get(score_url(usage_key=None), HTTP_X_LTIGATE_ASSERTION=token).status_code == 400
    bad = service_assertion(mint, usage_key="not-a-key")
    response = client.get(score_url(usage_key="not-a-key"), HTTP_X_LTIGATE_ASSERTION=bad)
    assert response.status_code == 400


def test_composite_score_of_an_unknown_user_or_block_is_404(client, mint, alice):
    response = client.get(score_url(user=BOB), HTTP_X_LTIGATE_ASSERTION=service_assertion(mint, sub=BOB))
    assert response.status_code == 404
    other = "block-v1:OrgX+CS101+2026+type@sequential+block@s9"
    response = client.get(score_url(usage_key=other), HTTP_X_LTIGATE_ASSERTION=service_assertion(mint, usage_key=other))
    assert response.status_code == 404


def test_composite_score_creates_no_user(client, mint):
    response = client.get(score_url(), HTTP_X_LTIGATE_ASSERTION=service_assertion(mint))
    assert response.status_code == 404
    assert User.objects.count() == 0
