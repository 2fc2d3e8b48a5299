"""A session the gateway logged in is usable only with the gateway's assertion."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.test import Client

from ltigate_openedx import users

from . import urls
from .conftest import ALICE, BOB, claims_for

pytestmark = pytest.mark.django_db
User = get_user_model()
BACKEND = "tests.backends.LmsLikeModelBackend"


@pytest.fixture
def client():
    urls.CALLS.clear()
    return Client()


def whoami(client, token=None):
    headers = {} if token is None else {"HTTP_X_LTIGATE_ASSERTION": token}
    return client.get("/whoami", **headers)


def test_a_gateway_session_replayed_without_the_header_is_anonymous(client, mint, fake):
    assert whoami(client, mint()).json()["user"] == ALICE
    session_key = client.cookies["sessionid"].value
    assert Session.objects.filter(session_key=session_key).exists()

    # The same cookie, straight to the LMS.
    replay = Client()
    replay.cookies["sessionid"] = session_key
    response = whoami(replay)
    assert response.status_code == 200
    assert response.json() == {"user": None, "claims": False}
    assert urls.CALLS[-1] == "/whoami"
    # Logged out: the row is gone and the response drops the cookie.
    assert not Session.objects.filter(session_key=session_key).exists()
    assert response.cookies["sessionid"].value == ""
    alice = User.objects.get(username=ALICE)
    assert fake.user_changes == [alice.pk, None]
    # The original browser is logged out too; its next gateway request logs
    # in again, into a new session.
    assert whoami(client, mint()).json()["user"] == ALICE
    assert client.cookies["sessionid"].value != session_key
    assert fake.user_changes == [alice.pk, None, alice.pk]


def test_a_gateway_session_after_many_gateway_requests_is_still_gateway_only(client, mint):
    for _ in range(3):
        whoami(client, mint())
    whoami(client, mint(email="new@example.edu"))
    assert whoami(client).json()["user"] is None


def test_a_switched_gateway_session_is_gateway_only_too(client, mint):
    whoami(client, mint())
    assert whoami(client, mint(sub=BOB, email="bob@example.edu")).json()["user"] == BOB
    assert whoami(client).json()["user"] is None


def test_a_direct_login_is_never_touched(client, mint, fake):
    someone = User.objects.create_user("someone", password="secret")
    client.force_login(someone, backend=BACKEND)
    session_key = client.cookies["sessionid"].value
    for _ in range(3):
        assert whoami(client).json()["user"] == "someone"
    assert client.cookies["sessionid"].value == session_key
    assert Session.objects.filter(session_key=session_key).exists()
    assert fake.user_changes == []


def test_a_direct_login_of_a_gateway_learner_stays_direct(client, mint, fake):
    # The learner's own LMS login, then launches through the gateway as the
    # same user: the session was not logged in by the gateway.
    alice = users.get_or_create_user(claims_for())
    client.force_login(alice, backend=BACKEND)
    assert whoami(client, mint()).json()["user"] == ALICE
    assert fake.user_changes == []
    assert whoami(client).json()["user"] == ALICE
    assert whoami(client, mint(name="Alicia")).json()["user"] == ALICE
    assert whoami(client).json()["user"] == ALICE


def test_a_request_without_a_session_cookie_leaves_the_session_alone(client):
    # Not even read: reading it would add "Vary: Cookie" to every response.
    response = client.get("/event")
    assert response.status_code == 200
    assert "Cookie" not in response.get("Vary", "")
