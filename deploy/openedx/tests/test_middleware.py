"""The middleware's decisions, through Django's test client."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from ltigate_openedx.models import LtigateUser

from . import urls
from .conftest import ALICE, BOB, alg_none, claims_for, hs256_with_public_key

pytestmark = pytest.mark.django_db
User = get_user_model()


@pytest.fixture
def client():
    urls.CALLS.clear()
    return Client()


def whoami(client, token=None, **headers):
    if token is not None:
        headers["HTTP_X_LTIGATE_ASSERTION"] = token
    return client.get("/whoami", **headers)


def test_without_the_header_the_request_is_untouched(client):
    response = whoami(client)
    assert response.status_code == 200
    assert response.json() == {"user": None, "claims": False}
    assert User.objects.count() == 0
    assert "sessionid" not in response.cookies


def test_a_good_header_logs_the_sub_user_in(client, mint, fake):
    response = whoami(client, mint())
    assert response.status_code == 200
    assert response.json() == {"user": ALICE, "claims": True}
    user = User.objects.get(username=ALICE)
    assert LtigateUser.objects.filter(user=user).exists()
    assert "sessionid" in response.cookies
    assert fake.user_changes == [user.pk]
    # The LMS's own session carries the login: the next gateway request is
    # not logged in again.
    assert whoami(client, mint()).json()["user"] == ALICE
    assert fake.user_changes == [user.pk]


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "",
        "a.b.c",
    ],
)
def test_a_malformed_header_is_refused_never_anonymous(client, token):
    response = whoami(client, token)
    assert response.status_code == 403
    assert urls.CALLS == []
    assert User.objects.count() == 0


def test_forged_headers_are_refused(client, mint, keys):
    now_claims = claims_for()
    for token in (
        mint(iss="http://evil.test"),
        mint(aud="lms"),
        mint(exp=1, iat=0),
        mint(key="attacker", kid="ltigate-1"),
        mint(key="attacker"),
        hs256_with_public_key(keys, now_claims),
        alg_none(now_claims),
    ):
        response = whoami(client, token)
        assert response.status_code == 403, token
    assert urls.CALLS == []
    assert User.objects.count() == 0


def test_a_bad_header_is_refused_even_on_a_logged_in_session(client, mint):
    assert whoami(client, mint()).json()["user"] == ALICE
    response = whoami(client, mint(key="attacker"))
    assert response.status_code == 403
    assert len(urls.CALLS) == 1


def test_the_header_is_read_from_the_configured_name(client, mint, settings):
    settings.LTIGATE_ASSERTION_HEADER = "X-Lms-Identity"
    assert whoami(client, mint()).json()["user"] is None
    assert whoami(client, HTTP_X_LMS_IDENTITY=mint()).json()["user"] == ALICE


def test_another_users_header_switches_the_session_user(client, mint, fake):
    whoami(client, mint())
    alice = User.objects.get(username=ALICE)
    first_session = client.cookies["sessionid"].value
    response = whoami(client, mint(sub=BOB, email="bob@example.edu", name="Bob"))
    bob = User.objects.get(username=BOB)
    assert response.json()["user"] == BOB
    assert fake.user_changes == [alice.pk, bob.pk]
    # Django flushed Alice's session: Bob gets a new one.
    assert client.cookies["sessionid"].value != first_session


def test_the_same_user_is_not_logged_in_again(client, mint, fake):
    whoami(client, mint())
    session = client.cookies["sessionid"].value
    for _ in range(3):
        assert whoami(client, mint()).json()["user"] == ALICE
    assert client.cookies["sessionid"].value == session
    assert len(fake.user_changes) == 1


def test_new_pii_claims_update_the_user_without_a_new_login(client, mint, fake):
    whoami(client, mint())
    session = client.cookies["sessionid"].value
    whoami(client, mint(email="alice@new.example", given_name="Alicia", name="Alicia Example"))
    alice = User.objects.get(username=ALICE)
    assert alice.email == "alice@new.example" and alice.first_name == "Alicia"
    assert fake.profiles[alice.pk] == "Alicia Example"
    assert client.cookies["sessionid"].value == session
    assert len(fake.user_changes) == 1


def test_an_existing_non_ltigate_account_is_never_taken_over(client, mint):
    User.objects.create_user(ALICE, password="secret")
    response = whoami(client, mint())
    assert response.status_code == 403
    assert urls.CALLS == []


def test_a_deactivated_user_is_refused_even_with_a_session(client, mint):
    whoami(client, mint())
    User.objects.filter(username=ALICE).update(is_active=False)
    assert whoami(client, mint()).status_code == 403


def test_the_session_records_the_configured_backend(client, mint):
    whoami(client, mint())
    assert client.session["_auth_user_backend"] == "tests.backends.LmsLikeModelBackend"
