"""Enrollment in the launched course, its record, and how an operator undoes it."""

import io
import logging

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from ltigate_openedx import platform, users
from ltigate_openedx.models import LtigateEnrollment

from . import urls
from .conftest import ALICE, BOB, COURSE, UNIT, claims_for

pytestmark = pytest.mark.django_db
User = get_user_model()
OTHER_COURSE = "course-v1:OrgX+CS102+2026"
OTHER_UNIT = "block-v1:OrgX+CS102+2026+type@vertical+block@u1"


@pytest.fixture
def client():
    urls.CALLS.clear()
    return Client()


def launch(client, mint, **claims):
    return client.get("/whoami", HTTP_X_LTIGATE_ASSERTION=mint(**claims))


def test_a_launch_enrolls_the_learner_in_audit_and_records_it(client, mint, fake):
    assert launch(client, mint).json()["user"] == ALICE
    alice = User.objects.get(username=ALICE)
    assert fake.enrollments == {(alice.pk, COURSE): {"mode": "audit", "active": True}}
    record = LtigateEnrollment.objects.get()
    assert (record.user_id, record.course_key, record.mode) == (alice.pk, COURSE, "audit")


def test_later_requests_of_the_session_do_no_enrollment_work(client, mint, fake):
    launch(client, mint)
    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            assert launch(client, mint).status_code == 200
    assert len(fake.enroll_calls) == 1
    assert not [q for q in queries if "ltigate_openedx_" in q["sql"]]


def test_each_new_course_is_enrolled_once(client, mint, fake):
    launch(client, mint)
    launch(client, mint, course_key=OTHER_COURSE, usage_key=OTHER_UNIT)
    launch(client, mint)
    launch(client, mint, course_key=OTHER_COURSE, usage_key=OTHER_UNIT)
    assert [c[1] for c in fake.enroll_calls] == [COURSE, OTHER_COURSE]
    assert sorted(LtigateEnrollment.objects.values_list("course_key", flat=True)) == [COURSE, OTHER_COURSE]


def test_a_new_session_checks_again_without_a_duplicate_record(mint, fake):
    launch(Client(), mint)
    launch(Client(), mint)
    assert len(fake.enroll_calls) == 2
    assert LtigateEnrollment.objects.count() == 1


def test_an_enrollment_the_learner_had_is_not_recorded(client, mint, fake):
    alice = users.get_or_create_user(claims_for())
    fake.enrollments[(alice.pk, COURSE)] = {"mode": "verified", "active": True}
    assert launch(client, mint).status_code == 200
    assert len(fake.enroll_calls) == 1
    assert fake.enrollments[(alice.pk, COURSE)] == {"mode": "verified", "active": True}
    assert not LtigateEnrollment.objects.exists()


def test_an_inactive_enrollment_is_reactivated_and_recorded(client, mint, fake):
    alice = users.get_or_create_user(claims_for())
    fake.enrollments[(alice.pk, COURSE)] = {"mode": "audit", "active": False}
    launch(client, mint)
    assert fake.enrollments[(alice.pk, COURSE)]["active"] is True
    assert LtigateEnrollment.objects.filter(user=alice, course_key=COURSE).exists()


@pytest.mark.parametrize(
    "refusal, logged",
    [
        (platform.NotFound(COURSE), "no such course"),
        (platform.EnrollmentRefused("EnrollmentNotAllowed: a filter refused"), "EnrollmentNotAllowed"),
        (RuntimeError("database on fire"), "enrolling user"),
    ],
    ids=["no-such-course", "filter-refused", "any-error"],
)
def test_a_failed_enrollment_is_logged_and_the_request_goes_on(client, mint, fake, caplog, refusal, logged):
    fake.enroll_refusals[COURSE] = refusal
    with caplog.at_level(logging.INFO, logger="ltigate_openedx.enrollment"):
        response = launch(client, mint)
    assert response.status_code == 200 and response.json()["user"] == ALICE
    assert logged in caplog.text
    assert not LtigateEnrollment.objects.exists()
    # Handled for this session: not tried on every request.
    launch(client, mint)
    assert len(fake.enroll_calls) == 1


def test_a_malformed_course_key_is_logged(client, mint, fake, caplog):
    assert launch(client, mint, course_key="not-a-key").status_code == 200
    assert "not enrolling" in caplog.text
    assert not LtigateEnrollment.objects.exists()


def test_the_mode_is_configurable_and_none_turns_it_off(client, mint, fake, settings):
    settings.LTIGATE_ENROLLMENT_MODE = "honor"
    launch(client, mint)
    assert [c[2] for c in fake.enroll_calls] == ["honor"]
    assert LtigateEnrollment.objects.get().mode == "honor"
    settings.LTIGATE_ENROLLMENT_MODE = "none"
    bob = Client()
    assert bob.get("/whoami", HTTP_X_LTIGATE_ASSERTION=mint(sub=BOB)).json()["user"] == BOB
    assert len(fake.enroll_calls) == 1


def test_service_views_and_refused_users_enroll_nobody(client, mint, fake):
    users.get_or_create_user(claims_for())
    response = client.get(
        f"/ltigate/score?user={ALICE}&usage_key={UNIT.replace('+', '%2B')}",
        HTTP_X_LTIGATE_ASSERTION=mint(),
    )
    assert response.status_code == 404
    User.objects.create_user(BOB, password="secret")
    assert client.get("/whoami", HTTP_X_LTIGATE_ASSERTION=mint(sub=BOB)).status_code == 403
    assert fake.enroll_calls == []


def test_an_assertion_without_a_course_key_enrolls_nobody(client, mint, fake):
    assert launch(client, mint, course_key=None).status_code == 200
    assert fake.enroll_calls == []


def test_a_session_switching_users_enrolls_the_new_one(client, mint, fake):
    launch(client, mint)
    launch(client, mint, sub=BOB, email="bob@example.edu")
    bob = User.objects.get(username=BOB)
    assert (bob.pk, COURSE) in fake.enrollments
    assert LtigateEnrollment.objects.filter(user=bob).exists()


# --- the management command ---------------------------------------------------


def command(*args):
    out = io.StringIO()
    call_command("ltigate_enrollments", *args, stdout=out)
    return out.getvalue().splitlines()


@pytest.fixture
def enrolled(mint, fake):
    """Alice in two courses through ltigate, Bob in one; Bob had OTHER_COURSE already."""
    launch(Client(), mint)
    launch(Client(), mint, course_key=OTHER_COURSE, usage_key=OTHER_UNIT)
    bob = users.get_or_create_user(claims_for(BOB))
    fake.enrollments[(bob.pk, OTHER_COURSE)] = {"mode": "verified", "active": True}
    launch(Client(), mint, sub=BOB)
    launch(Client(), mint, sub=BOB, course_key=OTHER_COURSE, usage_key=OTHER_UNIT)
    return User.objects.get(username=ALICE), bob


def test_list_shows_what_ltigate_made(enrolled):
    lines = command("list")
    assert [line.split("\t")[:4] for line in lines[:-1]] == [
        [COURSE, ALICE, ALICE, "audit"],
        [COURSE, BOB, BOB, "audit"],
        [OTHER_COURSE, ALICE, ALICE, "audit"],
    ]
    assert lines[-1] == "3 enrollment(s) made by ltigate"
    assert command("list", "--course", OTHER_COURSE)[-1] == "1 enrollment(s) made by ltigate"


def test_remove_unenrolls_through_the_seam_and_deletes_the_records(enrolled, fake):
    alice, bob = enrolled
    lines = command("remove", "--course", COURSE)
    assert lines == [
        f"unenrolled {ALICE} ({ALICE}) from {COURSE}; record deleted",
        f"unenrolled {BOB} ({BOB}) from {COURSE}; record deleted",
    ]
    assert fake.enrollments[(alice.pk, COURSE)]["active"] is False
    assert fake.enrollments[(bob.pk, COURSE)]["active"] is False
    assert not LtigateEnrollment.objects.filter(course_key=COURSE).exists()
    # What ltigate did not make is untouched.
    assert fake.enrollments[(bob.pk, OTHER_COURSE)] == {"mode": "verified", "active": True}
    assert fake.enrollments[(alice.pk, OTHER_COURSE)]["active"] is True


def test_remove_for_one_user(enrolled, fake):
    alice, bob = enrolled
    assert command("remove", "--course", COURSE, "--user", BOB) == [
        f"unenrolled {BOB} ({BOB}) from {COURSE}; record deleted"
    ]
    assert fake.enrollments[(alice.pk, COURSE)]["active"] is True
    assert list(LtigateEnrollment.objects.filter(course_key=COURSE).values_list("user_id", flat=True)) == [alice.pk]


def test_remove_of_an_already_inactive_enrollment_and_of_nothing(enrolled, fake):
    alice, _ = enrolled
    fake.enrollments[(alice.pk, OTHER_COURSE)]["active"] = False
    assert command("remove", "--course", OTHER_COURSE) == [
        f"{ALICE} ({ALICE}) was not enrolled in {OTHER_COURSE} any more; record deleted"
    ]
    assert command("remove", "--course", "course-v1:None+X+Y") == ["no enrollment made by ltigate matches"]


def test_remove_keeps_the_record_when_unenrolling_fails(enrolled, fake, monkeypatch):
    def refuse(user, course_key):
        raise platform.EnrollmentRefused("UnenrollmentNotAllowed: policy")

    monkeypatch.setattr(fake, "unenroll", refuse)
    with pytest.raises(CommandError):
        command("remove", "--course", COURSE, "--user", ALICE)
    assert LtigateEnrollment.objects.filter(course_key=COURSE, user__username=ALICE).exists()


def test_the_command_needs_an_action_and_remove_a_course():
    with pytest.raises(CommandError):
        command()
    with pytest.raises(CommandError):
        command("remove")


# --- Django admin ---------------------------------------------------------------


@pytest.fixture
def operator():
    admin = Client()
    admin.force_login(
        User.objects.create_superuser("operator", "op@example.edu", "secret"),
        backend="tests.backends.LmsLikeModelBackend",
    )
    return admin


def test_the_admin_lists_learners_and_enrollments(enrolled, operator):
    page = operator.get("/admin/ltigate_openedx/ltigateenrollment/")
    assert page.status_code == 200
    assert COURSE in page.content.decode() and OTHER_COURSE in page.content.decode()
    page = operator.get("/admin/ltigate_openedx/ltigateuser/")
    assert page.status_code == 200 and BOB in page.content.decode()
    assert operator.get("/admin/ltigate_openedx/ltigateenrollment/add/").status_code == 403


def test_deleting_in_the_admin_unenrolls(enrolled, operator, fake):
    alice, bob = enrolled
    chosen = LtigateEnrollment.objects.filter(course_key=COURSE)
    response = operator.post(
        "/admin/ltigate_openedx/ltigateenrollment/",
        {"action": "delete_selected", "_selected_action": [r.pk for r in chosen], "post": "yes"},
        follow=True,
    )
    assert response.status_code == 200
    # The admin capitalises messages.
    assert f"Unenrolled {ALICE} ({ALICE}) from {COURSE}; record deleted" in response.content.decode()
    assert fake.enrollments[(alice.pk, COURSE)]["active"] is False
    assert fake.enrollments[(bob.pk, COURSE)]["active"] is False
    assert not LtigateEnrollment.objects.filter(course_key=COURSE).exists()
    assert LtigateEnrollment.objects.filter(course_key=OTHER_COURSE).count() == 1
