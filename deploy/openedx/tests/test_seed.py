"""Switching from the seed plugin: its learners keep their accounts.

The database holds a table shaped like the seed's ``lti_1p3_provider_ltiprofile``
(from its migrations 0001_initial and 0005_ltiprofile_email), created here with
raw SQL: the seed app itself is not installed, as after a switch.
"""

import io
import random
import string
from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from ltigate_openedx import platform, seed, users
from ltigate_openedx.models import LtigateUser

from .conftest import ALICE, BOB, COURSE, PROBLEM, UNIT, claims_for

pytestmark = pytest.mark.django_db
User = get_user_model()

CANVAS = "https://canvas.test"
SEED_TABLE_SQL = """
CREATE TABLE lti_1p3_provider_ltiprofile (
    id integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    platform_id varchar(255) NOT NULL,
    client_id varchar(255) NOT NULL,
    subject_id varchar(255) NOT NULL,
    created_at datetime NOT NULL,
    user_id integer NULL UNIQUE REFERENCES auth_user (id) DEFERRABLE INITIALLY DEFERRED,
    email varchar(255) NOT NULL DEFAULT '',
    UNIQUE (platform_id, client_id, subject_id)
)
"""


@pytest.fixture(autouse=True)
def fresh_seed_cache():
    seed.forget()
    yield
    seed.forget()


def seed_username():
    """Like the seed's generate_random_edx_username: 30 letters and digits."""
    return "".join(random.SystemRandom().choice(string.ascii_letters + string.digits) for _ in range(30))


@pytest.fixture
def seed_table():
    with connection.cursor() as cursor:
        cursor.execute(SEED_TABLE_SQL)

    def add(platform_id=CANVAS, client_id="c1", subject_id="42", user=True, active=True):
        account = None
        if user:
            name = seed_username()
            account = User.objects.create(
                username=name, email=f"{name}@edx-lti-1p3.com", is_active=active
            )
            account.set_unusable_password()
            account.save()
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO lti_1p3_provider_ltiprofile "
                "(platform_id, client_id, subject_id, created_at, user_id, email) "
                "VALUES (%s, %s, %s, '2024-01-01 00:00:00', %s, '')",
                [platform_id, client_id, subject_id, account.pk if account else None],
            )
        return account

    return add


def lti(sub="42", issuer=CANVAS, client_id="c1"):
    return {"issuer": issuer, "client_id": client_id, "deployment_id": "d1", "sub": sub}


def test_a_launch_logs_in_the_seed_plugins_user(seed_table, mint, fake):
    learner = seed_table()
    users_before = User.objects.count()
    client = Client()
    response = client.get("/whoami", HTTP_X_LTIGATE_ASSERTION=mint(lti=lti()))
    assert response.status_code == 200
    # The same account, under its own (random) LMS username.
    assert response.json()["user"] == learner.username
    assert client.session["_auth_user_id"] == str(learner.pk)
    assert User.objects.count() == users_before
    assert LtigateUser.objects.get(user=learner).username == ALICE
    # The claims update it like any of ltigate's learners.
    learner.refresh_from_db()
    assert learner.email == f"{ALICE}@example.edu"
    assert fake.profiles[learner.pk] == "Alice Example"
    # The next request takes the fast path: no user lookup at all.
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/whoami", HTTP_X_LTIGATE_ASSERTION=mint(lti=lti())).json()["user"] == learner.username
    assert not [q for q in queries if "ltigate_openedx_" in q["sql"] or "lti_1p3_provider" in q["sql"]]


def test_once_linked_the_seed_table_is_not_read_again(seed_table):
    learner = seed_table()
    assert users.get_or_create_user(claims_for(lti=lti())).pk == learner.pk
    with CaptureQueriesContext(connection) as queries:
        assert users.get_or_create_user(claims_for(lti=lti())).pk == learner.pk
    assert not [q for q in queries if "lti_1p3_provider" in q["sql"]]


def test_the_tables_existence_is_asked_once(seed_table):
    seed_table()
    seed_table(subject_id="43")
    users.get_or_create_user(claims_for(lti=lti("42")))
    with CaptureQueriesContext(connection) as queries:
        users.get_or_create_user(claims_for(BOB, lti=lti("43")))
    # SQLite's table list comes from sqlite_master.
    assert not [q for q in queries if "sqlite_master" in q["sql"]]
    assert len([q for q in queries if "lti_1p3_provider_ltiprofile" in q["sql"]]) == 1


def test_scores_go_out_under_the_gateway_username(seed_table, gateway, fake, django_capture_on_commit_callbacks):
    learner = seed_table()
    users.get_or_create_user(claims_for(lti=lti()))
    fake.ancestors[PROBLEM] = [UNIT]
    with django_capture_on_commit_callbacks(execute=True):
        platform.FAKE_PROBLEM_WEIGHTED_SCORE_CHANGED.send(
            sender=None, weighted_earned=1, weighted_possible=2, user_id=learner.pk,
            course_id=COURSE, usage_id=PROBLEM, modified=None,
        )
    assert [r["json"]["username"] for r in gateway.score_requests] == [ALICE]


def test_the_composite_score_takes_the_gateway_username(seed_table, mint, fake):
    learner = seed_table()
    users.get_or_create_user(claims_for(lti=lti()))
    fake.scores[(learner.username, UNIT)] = (1.0, 3.0)
    response = Client().get(
        "/ltigate/score?" + urlencode({"user": ALICE, "usage_key": UNIT}),
        HTTP_X_LTIGATE_ASSERTION=mint(lti=lti(), email=None, name=None),
    )
    assert response.status_code == 200
    assert response.json() == {"earned": 1.0, "possible": 3.0}
    # The LMS username is not a gateway username.
    response = Client().get(
        "/ltigate/score?" + urlencode({"user": learner.username, "usage_key": UNIT}),
        HTTP_X_LTIGATE_ASSERTION=mint(lti=lti()),
    )
    assert response.status_code == 403


def test_an_unrelated_lti_user_gets_a_new_account(seed_table):
    learner = seed_table()
    for source in (lti("99"), lti("42", client_id="c2"), lti("42", issuer="https://other.test")):
        LtigateUser.objects.filter(username=ALICE).delete()
        User.objects.filter(username=ALICE).delete()
        user = users.get_or_create_user(claims_for(lti=source))
        assert user.pk != learner.pk and user.username == ALICE
    assert not LtigateUser.objects.filter(user=learner).exists()


def test_a_profile_without_a_user_creates_one(seed_table):
    seed_table(user=False)
    user = users.get_or_create_user(claims_for(lti=lti()))
    assert user.username == ALICE


def test_a_deactivated_seed_user_is_refused(seed_table):
    learner = seed_table(active=False)
    with pytest.raises(users.UserRefused, match="deactivated"):
        users.get_or_create_user(claims_for(lti=lti()))
    assert not LtigateUser.objects.filter(user=learner).exists()
    assert not User.objects.filter(username=ALICE).exists()


@pytest.mark.parametrize("flag", ["is_staff", "is_superuser"])
def test_a_seed_user_raised_to_staff_is_refused(seed_table, flag):
    learner = seed_table()
    setattr(learner, flag, True)
    learner.save()
    with pytest.raises(users.UserRefused, match="staff"):
        users.get_or_create_user(claims_for(lti=lti()))
    assert not LtigateUser.objects.filter(user=learner).exists()
    assert not User.objects.filter(username=ALICE).exists()


def test_a_seed_user_linked_to_another_gateway_username_is_refused(seed_table):
    learner = seed_table()
    LtigateUser.objects.create(user=learner, username=BOB)
    with pytest.raises(users.UserRefused, match="another gateway learner"):
        users.get_or_create_user(claims_for(lti=lti()))
    assert LtigateUser.objects.get(user=learner).username == BOB


def test_without_the_seed_table_nothing_is_read():
    with CaptureQueriesContext(connection) as queries:
        users.get_or_create_user(claims_for())
    assert not [q for q in queries if "lti_1p3_provider" in q["sql"]]
    assert seed.table_present() is False


def test_a_seed_table_dropped_while_running_is_forgotten(seed_table, caplog):
    seed_table()
    assert seed.table_present() is True
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE lti_1p3_provider_ltiprofile")
    user = users.get_or_create_user(claims_for(lti=lti()))
    assert user.username == ALICE
    assert "reading the seed's lti_1p3_provider_ltiprofile failed" in caplog.text
    assert seed.table_present() is False


def test_a_malformed_lti_claim_skips_the_seed(seed_table):
    seed_table()
    for value in (None, "x", {"issuer": CANVAS, "client_id": "c1"}, {"issuer": CANVAS, "client_id": "c1", "sub": 42}):
        LtigateUser.objects.filter(username=ALICE).delete()
        User.objects.filter(username=ALICE).delete()
        assert users.get_or_create_user(claims_for(lti=value)).username == ALICE


def report():
    out = io.StringIO()
    call_command("ltigate_seed_report", stdout=out)
    return out.getvalue()


def test_the_seed_report_counts_what_a_switch_keeps(seed_table):
    seed_table(subject_id="42")
    seed_table(subject_id="43")
    seed_table(subject_id="44", active=False)
    seed_table(subject_id="45", user=False)
    seed_table(platform_id="https://moodle.test", client_id="m1", subject_id="7")
    users.get_or_create_user(claims_for(lti=lti("42")))
    assert report().splitlines() == [
        "seed profiles: 5",
        "with an existing active user (kept): 3",
        "already linked to a gateway username: 1",
        "without a usable user (not kept): 2",
        "per platform_id, client_id: profiles, kept, linked",
        "  https://canvas.test  c1: 4, 2, 1",
        "  https://moodle.test  m1: 1, 1, 0",
    ]


def test_the_seed_report_without_a_seed_table():
    assert "No seed table" in report()
