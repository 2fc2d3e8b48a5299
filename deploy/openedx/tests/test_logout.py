"""The gateway's logout ends the LMS session its cookies name (views.logout)."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.test import Client

from . import urls
from .conftest import ALICE

pytestmark = pytest.mark.django_db
User = get_user_model()


@pytest.fixture
def client():
    urls.CALLS.clear()
    return Client()


def whoami(client, token=None):
    headers = {} if token is None else {"HTTP_X_LTIGATE_ASSERTION": token}
    return client.get("/whoami", **headers)


def logged_in(client, mint):
    assert whoami(client, mint()).json()["user"] == ALICE
    return client.cookies["sessionid"].value


def test_a_logout_assertion_ends_the_django_session(client, mint, fake):
    session_key = logged_in(client, mint)
    alice = User.objects.get(username=ALICE)
    response = client.post("/ltigate/logout", HTTP_X_LTIGATE_ASSERTION=mint(ltigate_logout=True))
    assert response.status_code == 200, response.content
    assert response.json() == {"logged_out": True}
    # Flushed: the row is gone and the response expires the cookie.
    assert not Session.objects.filter(session_key=session_key).exists()
    assert response.cookies["sessionid"].value == ""
    assert response.cookies["edxloggedin"].value == ""
    assert fake.logged_in_cookie_deletions == 1
    assert fake.user_changes == [alice.pk, None]
    # The old cookie is worth nothing now, even with a gateway assertion:
    # that logs in again, into a new session.
    replay = Client()
    replay.cookies["sessionid"] = session_key
    assert whoami(replay).json()["user"] is None
    assert whoami(replay, mint()).json()["user"] == ALICE
    assert replay.cookies["sessionid"].value != session_key


def test_a_logout_without_a_session_is_harmless(client, mint, fake):
    response = client.post("/ltigate/logout", HTTP_X_LTIGATE_ASSERTION=mint(ltigate_logout=True))
    assert response.status_code == 200
    assert response.json() == {"logged_out": False}
    assert not User.objects.filter(username=ALICE).exists(), "a logout creates no account"


def test_an_ordinary_assertion_cannot_log_out(client, mint):
    session_key = logged_in(client, mint)
    response = client.post("/ltigate/logout", HTTP_X_LTIGATE_ASSERTION=mint())
    assert response.status_code == 403
    assert Session.objects.filter(session_key=session_key).exists()
    assert whoami(client, mint()).json()["user"] == ALICE


def test_no_assertion_cannot_log_out_a_direct_session(client):
    someone = User.objects.create_user("someone", password="secret")
    client.force_login(someone, backend="tests.backends.LmsLikeModelBackend")
    session_key = client.cookies["sessionid"].value
    response = client.post("/ltigate/logout")
    assert response.status_code == 401
    assert Session.objects.filter(session_key=session_key).exists()


def test_a_forged_logout_assertion_is_refused(client, mint):
    session_key = logged_in(client, mint)
    response = client.post(
        "/ltigate/logout", HTTP_X_LTIGATE_ASSERTION=mint(key="attacker", kid="ltigate-1", ltigate_logout=True)
    )
    assert response.status_code == 403
    assert Session.objects.filter(session_key=session_key).exists()


def test_a_logout_assertion_is_refused_on_every_other_view(client, mint):
    session_key = logged_in(client, mint)
    for path in ("/whoami", "/event", "/ltigate/score?user=x&usage_key=y"):
        response = client.get(path, HTTP_X_LTIGATE_ASSERTION=mint(ltigate_logout=True))
        assert response.status_code == 403, path
    assert Session.objects.filter(session_key=session_key).exists()
    # Nor does it log anyone in.
    fresh = Client()
    assert fresh.get("/whoami", HTTP_X_LTIGATE_ASSERTION=mint(ltigate_logout=True)).status_code == 403
    assert "sessionid" not in fresh.cookies


def test_logout_is_post_only(client, mint):
    session_key = logged_in(client, mint)
    response = client.get("/ltigate/logout", HTTP_X_LTIGATE_ASSERTION=mint(ltigate_logout=True))
    assert response.status_code == 405
    assert Session.objects.filter(session_key=session_key).exists()
