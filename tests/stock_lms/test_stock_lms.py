"""The stand-in on its own: it behaves like the stock LMS where a gateway meets it.

Every request here is a direct one (no assertion): what a browser on the
LMS's own host gets.
"""

import json
import re

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import RequestFactory

from common.djangoapps.student.models import AlreadyEnrolledError, CourseEnrollment, UserProfile
from lms.djangoapps.grades.api import CourseGradeFactory
from lms.djangoapps.grades.course_grade import ZeroCourseGrade
from lms.djangoapps.grades.signals.signals import PROBLEM_WEIGHTED_SCORE_CHANGED
from stock_lms.fixture_course import (
    COURSE_ID,
    COURSE_KEY,
    GATED_SEQ,
    GATED_UNIT,
    H1,
    LOCKED_ASSET,
    OPEN_ASSET,
    P1,
    SEQ1,
    UNIT1,
    course_assets,
)
from testsupport import LMS_HOST, LMS_ORIGIN, DirectClient
from xmodule.modulestore.django import modulestore
from xmodule.modulestore.exceptions import ItemNotFoundError

pytestmark = pytest.mark.django_db

HANDLER = f"/courses/{COURSE_ID}/xblock/{P1}/handler/xmodule_handler/problem_check"
ANSWER = {f"input_{P1.html_id()}_2_1": "correct"}


def make_user(username, password="pw-12345", enroll=False, profile=True):
    user = get_user_model().objects.create_user(username, f"{username}@example.com", password)
    if profile:
        UserProfile.objects.create(user=user, name=username.title())
    if enroll:
        CourseEnrollment.enroll(user, COURSE_KEY)
    return user


def logged_in(username, password="pw-12345", **kwargs):
    """A direct client logged in through the LMS's login form."""
    client = DirectClient(**kwargs)
    client.get("/login")
    response = client.post(
        "/login", {"username": username, "password": password, "csrfmiddlewaretoken": client.csrf_token()},
        HTTP_ORIGIN=LMS_ORIGIN,
    )
    assert response.status_code == 302, response.content
    assert response["Location"] == "/api/user/v1/me"
    return client


def post_problem(client, origin=LMS_ORIGIN, token=True):
    headers = {"HTTP_ORIGIN": origin} if origin else {}
    if token:
        headers["HTTP_X_CSRFTOKEN"] = client.csrf_token()
    return client.post(HANDLER, ANSWER, **headers)


# --- settings as Tutor v21 sets them ---


def test_settings_are_tutor_production():
    assert settings.SESSION_COOKIE_DOMAIN == LMS_HOST
    # (Django's test set-up appends "testserver".)
    assert [host for host in settings.ALLOWED_HOSTS if host != "testserver"] == [LMS_HOST, "lms"]
    assert settings.SESSION_COOKIE_NAME == "sessionid"
    assert settings.SESSION_COOKIE_SECURE and settings.CSRF_COOKIE_SECURE
    assert settings.SESSION_COOKIE_SAMESITE == "None"
    assert settings.SECURE_PROXY_SSL_HEADER == ("HTTP_X_FORWARDED_PROTO", "https")
    assert settings.X_FRAME_OPTIONS == "SAMEORIGIN"
    assert settings.DATABASES["default"]["ATOMIC_REQUESTS"] is True
    assert settings.CSRF_TRUSTED_ORIGINS == []
    # No plain ModelBackend: a subclass of it between two that authenticate nobody.
    assert "django.contrib.auth.backends.ModelBackend" not in settings.AUTHENTICATION_BACKENDS
    assert settings.AUTHENTICATION_BACKENDS[1].endswith("EdxRateLimitedAllowAllUsersModelBackend")
    # The plugin mechanism placed the app's middleware right after the LMS's auth middleware.
    middleware = settings.MIDDLEWARE
    auth = middleware.index("openedx.core.djangoapps.cache_toolbox.middleware.CacheBackedAuthenticationMiddleware")
    assert middleware[auth + 1] == "ltigate_openedx.middleware.LtigateAssertionMiddleware"
    assert "django.contrib.sessions.middleware.SessionMiddleware" not in middleware


def test_unknown_host_is_refused():
    assert DirectClient(HTTP_HOST="lti.lms.test").get("/api/user/v1/me").status_code == 400


# --- login, sessions ---


def test_direct_login_sets_a_safe_session_cookie_on_the_lms_domain():
    make_user("alice")
    client = logged_in("alice")
    cookie = client.cookies["sessionid"]
    version, session_key, salt, signature = cookie.value.split("|")
    assert version == "1" and session_key and salt and signature
    assert cookie["domain"] == LMS_HOST
    assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "None"
    assert client.cookies["edxloggedin"].value == "true"
    assert json.loads(client.get("/api/user/v1/me").content) == {"username": "alice"}


def test_login_is_csrf_protected_and_refuses_bad_passwords():
    make_user("alice")
    client = DirectClient()
    client.get("/login")
    assert client.post("/login", {"username": "alice", "password": "pw-12345"}, HTTP_ORIGIN=LMS_ORIGIN).status_code == 403
    response = client.post(
        "/login", {"username": "alice", "password": "nope", "csrfmiddlewaretoken": client.csrf_token()},
        HTTP_ORIGIN=LMS_ORIGIN,
    )
    assert response.status_code == 400


def test_me_is_401_for_anonymous_users():
    response = DirectClient().get("/api/user/v1/me")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("JWT")


def test_a_bare_django_session_key_is_refused():
    make_user("alice")
    client = logged_in("alice")
    session_key = client.cookies["sessionid"].value.split("|")[1]
    forged = DirectClient()
    forged.cookies["sessionid"] = session_key
    response = forged.get("/api/user/v1/me")
    assert response.status_code == 401
    assert forged.cookies["sessionid"].value == ""  # deleted
    html = DirectClient()
    html.cookies["sessionid"] = session_key
    response = html.get("/api/user/v1/me", HTTP_ACCEPT="text/html")
    assert response.status_code == 302 and response["Location"].startswith("/login?next=")


def test_a_safe_cookie_moved_to_another_user_is_refused():
    make_user("alice")
    bob = make_user("bob")
    client = logged_in("alice")
    session_key = client.cookies["sessionid"].value.split("|")[1]
    from django.contrib.sessions.backends.db import SessionStore  # pylint: disable=import-outside-toplevel

    store = SessionStore(session_key=session_key)
    store["_auth_user_id"] = str(bob.pk)
    store.save()
    assert client.get("/api/user/v1/me").status_code == 401


def _chain(view):
    """The LMS's request cache, safe-session and auth middleware around ``view``."""
    from django.contrib.auth.middleware import AuthenticationMiddleware  # pylint: disable=import-outside-toplevel
    from edx_django_utils.cache.middleware import RequestCacheMiddleware  # pylint: disable=import-outside-toplevel

    from openedx.core.djangoapps.safe_sessions.middleware import SafeSessionMiddleware  # pylint: disable=import-outside-toplevel

    return RequestCacheMiddleware(SafeSessionMiddleware(AuthenticationMiddleware(view)))


@pytest.mark.parametrize("expected", [False, True])
def test_a_user_change_during_a_request_needs_the_mark(expected):
    from django.contrib.auth import login  # pylint: disable=import-outside-toplevel
    from django.http import HttpResponse  # pylint: disable=import-outside-toplevel

    from openedx.core.djangoapps.safe_sessions.middleware import mark_user_change_as_expected  # pylint: disable=import-outside-toplevel

    make_user("alice")
    bob = make_user("bob")
    cookie = logged_in("alice").cookies["sessionid"].value

    def view(request):
        login(request, bob, backend=settings.AUTHENTICATION_BACKENDS[1])
        if expected:
            mark_user_change_as_expected(bob.pk)
        return HttpResponse("switched")

    request = RequestFactory().get("/switch", HTTP_HOST=LMS_HOST)
    request.COOKIES["sessionid"] = cookie
    response = _chain(view)(request)
    if expected:
        assert response.status_code == 200
        assert response.cookies["sessionid"].value.count("|") == 3
    else:
        # SafeSessionMiddleware: the session is flushed and the response replaced.
        assert response.status_code == 401
        assert response.cookies["sessionid"].value == ""


# --- the fixture course and the modulestore ---


def test_modulestore_parents_and_unknown_keys():
    store = modulestore()
    assert store.get_parent_location(P1) == UNIT1
    assert store.get_parent_location(UNIT1) == SEQ1
    assert store.get_parent_location(COURSE_KEY.make_usage_key("course", "course")) is None
    assert store.get_parent_location(COURSE_KEY.make_usage_key("problem", "nope")) is None
    with pytest.raises(ItemNotFoundError):
        store.get_parent_location(P1.replace(course_key=P1.course_key.replace(run="1999")))
    with pytest.raises(ItemNotFoundError):
        store.get_item(COURSE_KEY.make_usage_key("problem", "nope"))
    assert store.get_course(P1.course_key.replace(run="1999")) is None
    assert [b.location for b in store.get_items(COURSE_KEY, qualifiers={"name": "h1"})] == [H1]


# --- render_xblock ---


def test_stock_xblock_is_404_for_an_unenrolled_learner_and_renders_once_enrolled():
    user = make_user("alice")
    client = logged_in("alice")
    assert client.get(f"/xblock/{UNIT1}").status_code == 404
    CourseEnrollment.enroll(user, COURSE_KEY)
    response = client.get(f"/xblock/{UNIT1}")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<div id="ltigate-user">alice</div>' in html
    assert "X-Frame-Options" not in response  # xframe_options_exempt
    assert response.cookies["csrftoken"].value  # ensure_csrf_cookie


def test_stock_xblock_is_404_for_anonymous_users():
    assert DirectClient().get(f"/xblock/{UNIT1}").status_code == 404


def test_stock_xblock_accepts_post_and_refuses_other_views():
    make_user("alice", enroll=True)
    client = logged_in("alice")
    assert client.get(f"/xblock/{UNIT1}?view=author_view").status_code == 400
    assert client.post(f"/xblock/{UNIT1}", HTTP_X_CSRFTOKEN=client.csrf_token(), HTTP_ORIGIN=LMS_ORIGIN).status_code == 200
    # CSRF runs before the view's method check: a PUT needs a token to be refused as a PUT.
    assert client.put(f"/xblock/{UNIT1}").status_code == 403
    assert client.put(f"/xblock/{UNIT1}", HTTP_X_CSRFTOKEN=client.csrf_token(), HTTP_ORIGIN=LMS_ORIGIN).status_code == 405
    assert client.get("/xblock/not-a-key").status_code == 404


def test_unit_page_dom_contract():
    make_user("alice", enroll=True)
    html = logged_in("alice").get(f"/xblock/{UNIT1}").content.decode()
    for fragment in (
        'id="problem-submit"',
        'id="problem-result"',
        'id="event-submit"',
        'id="event-result"',
        f'<img id="locked-asset" src="/{LOCKED_ASSET}"',
        f'<a id="jump-link" href="/courses/{COURSE_ID}/jump_to_id/h1"',
        f'<a id="gated-link" href="/xblock/{GATED_UNIT}"',
        json.dumps(HANDLER),
        "X-CSRFToken",
        "csrftoken=",
    ):
        assert fragment in html, fragment


def test_a_unit_of_a_gated_sequence_redirects_to_the_sequence():
    make_user("alice", enroll=True)
    client = logged_in("alice")
    response = client.get(f"/xblock/{GATED_UNIT}")
    assert response.status_code == 302
    assert response["Location"] == f"/xblock/{GATED_SEQ}"
    page = client.get(response["Location"])
    assert page.status_code == 200 and 'id="gated-sequence"' in page.content.decode()


def test_staff_are_not_gated_and_need_no_enrollment():
    staff = make_user("staff")
    staff.is_staff = True
    staff.save()
    client = logged_in("staff")
    assert client.get(f"/xblock/{GATED_UNIT}").status_code == 200


# --- XBlock handlers ---


def test_handler_post_passes_csrf_only_with_token_and_the_lms_origin():
    make_user("alice")  # not enrolled: handlers do not check enrollment
    client = logged_in("alice")
    assert post_problem(client, token=False).status_code == 403
    assert post_problem(client, origin="https://evil.test").status_code == 403
    response = post_problem(client)
    assert response.status_code == 200
    body = json.loads(response.content)
    assert body["success"] == "correct"
    assert (body["current_score"], body["total_possible"]) == (2.0, 2.0)
    assert body["attempts_used"] == 1


def test_handler_post_from_the_gateway_origin_fails_on_a_stock_lms():
    make_user("alice")
    client = logged_in("alice")
    assert post_problem(client, origin=f"https://lti.{LMS_HOST}").status_code == 403


def test_anonymous_handler_post_is_unauthenticated():
    client = DirectClient()
    response = client.post(HANDLER, ANSWER, HTTP_ORIGIN=LMS_ORIGIN)
    assert response.status_code == 403 and response.content == b"Unauthenticated"


def test_unknown_handler_and_block_are_404_unknown_capa_action_is_200():
    make_user("alice")
    client = logged_in("alice")
    headers = {"HTTP_ORIGIN": LMS_ORIGIN, "HTTP_X_CSRFTOKEN": client.csrf_token()}
    base = f"/courses/{COURSE_ID}/xblock"
    assert client.post(f"{base}/{P1}/handler/nope", **headers).status_code == 404
    assert client.post(f"{base}/{P1.replace(block_id='nope')}/handler/xmodule_handler/problem_check",
                       **headers).status_code == 404
    response = client.post(f"{base}/{P1}/handler/xmodule_handler/problem_nope", **headers)
    assert response.status_code == 200 and b"is not a known capa action" in response.content


def test_problem_check_fires_the_weighted_score_signal_with_the_real_kwargs():
    user = make_user("alice")
    received = []

    def receiver(sender, **kwargs):
        received.append((sender, kwargs))

    PROBLEM_WEIGHTED_SCORE_CHANGED.connect(receiver, dispatch_uid="stock-lms-test")
    try:
        assert post_problem(logged_in("alice")).status_code == 200
    finally:
        PROBLEM_WEIGHTED_SCORE_CHANGED.disconnect(dispatch_uid="stock-lms-test")
    assert len(received) == 1
    sender, kwargs = received[0]
    assert sender is None
    assert kwargs["user_id"] == user.id
    assert kwargs["course_id"] == COURSE_ID and kwargs["usage_id"] == str(P1)
    assert (kwargs["weighted_earned"], kwargs["weighted_possible"]) == (2.0, 2.0)
    assert kwargs["modified"] is not None and kwargs["only_if_higher"] is False
    assert set(kwargs) >= {"score_deleted", "score_db_table", "grader_response"}


def test_course_grade_is_zero_until_graded_and_has_no_score_for_module():
    user = make_user("alice")
    grade = CourseGradeFactory().read(user, course_key=COURSE_KEY)
    assert isinstance(grade, ZeroCourseGrade)
    assert not hasattr(grade, "score_for_module")
    assert grade.score_for_block(UNIT1) == (0.0, 2.0)
    assert grade.score_for_block(COURSE_KEY.make_usage_key("vertical", "nope")) == (0.0, 0.0)
    assert post_problem(logged_in("alice")).status_code == 200
    grade = CourseGradeFactory().read(user, course_key=COURSE_KEY)
    assert grade.score_for_block(P1) == (2.0, 2.0)
    assert grade.score_for_block(UNIT1) == (2.0, 2.0)
    assert grade.score_for_block(COURSE_KEY.make_usage_key("course", "course")) == (2.0, 2.0)
    unknown = CourseGradeFactory().read(user, course_key=COURSE_KEY.replace(run="1999"))
    with pytest.raises(ItemNotFoundError):
        unknown.score_for_block(UNIT1.replace(course_key=COURSE_KEY.replace(run="1999")))


# --- /event, /calculate, jump_to_id ---


def test_event_is_not_csrf_exempt():
    client = DirectClient()
    client.get("/login")  # a csrftoken cookie
    data = {"event_type": "probe", "event": "{}", "page": "x"}
    assert client.post("/event", data, HTTP_ORIGIN=LMS_ORIGIN).status_code == 403
    assert client.post("/event", data, HTTP_ORIGIN="https://evil.test",
                       HTTP_X_CSRFTOKEN=client.csrf_token()).status_code == 403
    response = client.post("/event", data, HTTP_ORIGIN=LMS_ORIGIN, HTTP_X_CSRFTOKEN=client.csrf_token())
    assert response.status_code == 200 and response.content == b"success"


def test_calculate():
    client = DirectClient()
    assert json.loads(client.get("/calculate", {"equation": "2*(3+4)"}).content) == {"result": "14.0"}
    assert json.loads(client.get("/calculate", {"equation": "2+"}).content) == {"result": "Invalid syntax"}


def test_jump_to_id_redirects_to_the_learning_mfe():
    response = DirectClient().get(f"/courses/{COURSE_ID}/jump_to_id/h1")
    assert response.status_code == 302
    assert response["Location"] == f"https://apps.{LMS_HOST}/learning/course/{COURSE_ID}/{SEQ1}/{UNIT1}"
    assert DirectClient().get(f"/courses/{COURSE_ID}/jump_to_id/nope").status_code == 404


# --- course assets ---


def test_locked_asset_needs_an_enrollment():
    user = make_user("alice")
    path = f"/{LOCKED_ASSET}"
    assert DirectClient().get(path).status_code == 403
    client = logged_in("alice")
    response = client.get(path)
    assert response.status_code == 403 and response.content == b"Unauthorized"
    CourseEnrollment.enroll(user, COURSE_KEY)
    response = client.get(path)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert response["Cache-Control"] == "private, no-cache, no-store"
    assert response["X-Frame-Options"] == "ALLOW"


def test_unlocked_asset_is_public_and_block_slash_form_works():
    response = DirectClient().get(f"/asset-v1:StockX+LMS101+2026+type@asset+block/{OPEN_ASSET.block_id}")
    assert response.status_code == 200 and response.content.startswith(b"\x89PNG")
    assert DirectClient().get("/asset-v1:StockX+LMS101+2026+type@asset+block@missing.png").status_code == 404


def test_a_stale_digest_is_a_301_to_the_current_one():
    digest = course_assets()[str(OPEN_ASSET)].content_digest
    stale = "0" * 32
    response = DirectClient().get(f"/assets/courseware/v1/{stale}/asset-v1:StockX+LMS101+2026+type@asset+block/open.png")
    assert response.status_code == 301
    assert response["Location"] == f"/assets/courseware/v1/{digest}/asset-v1:StockX+LMS101+2026+type@asset+block@open.png"
    assert DirectClient().get(response["Location"]).status_code == 200


def test_asset_view_is_safe_methods_only():
    client = DirectClient()
    assert client.post(f"/{OPEN_ASSET}", HTTP_ORIGIN=LMS_ORIGIN).status_code == 403  # CSRF first
    client.get("/login")
    headers = {"HTTP_ORIGIN": LMS_ORIGIN, "HTTP_X_CSRFTOKEN": client.csrf_token()}
    assert client.post(f"/{OPEN_ASSET}", **headers).status_code == 405  # require_safe
    assert client.head(f"/{OPEN_ASSET}").status_code == 200


# --- enrollment, setup command, seed model ---


def test_enroll_behaves_like_the_platform():
    user = make_user("alice")
    enrollment = CourseEnrollment.enroll(user, COURSE_KEY)
    assert enrollment.mode == "audit" and CourseEnrollment.is_enrolled(user, COURSE_KEY)
    CourseEnrollment.enroll(user, COURSE_KEY)  # no check_access: logged only
    with pytest.raises(AlreadyEnrolledError):
        CourseEnrollment.enroll(user, COURSE_KEY, check_access=True)
    CourseEnrollment.unenroll(user, COURSE_KEY)
    assert not CourseEnrollment.is_enrolled(user, COURSE_KEY)
    nameless = make_user("nameless", profile=False)
    with pytest.raises(get_user_model().profile.RelatedObjectDoesNotExist):
        CourseEnrollment.enroll(nameless, COURSE_KEY)


def test_setup_command_is_idempotent():
    call_command("stock_lms_setup")
    call_command("stock_lms_setup")
    user = get_user_model().objects.get(username="direct_learner")
    assert user.check_password("direct-password")
    assert CourseEnrollment.is_enrolled(user, COURSE_KEY)
    client = logged_in("direct_learner", "direct-password")
    assert client.get(f"/xblock/{UNIT1}").status_code == 200


def test_seed_profile_table_is_the_seeds():
    from django.db import connection  # pylint: disable=import-outside-toplevel

    with connection.cursor() as cursor:
        assert "lti_1p3_provider_ltiprofile" in connection.introspection.table_names(cursor)
        columns = {c.name for c in connection.introspection.get_table_description(cursor, "lti_1p3_provider_ltiprofile")}
    assert columns == {"id", "user_id", "platform_id", "client_id", "subject_id", "email", "created_at"}


def test_problem_page_names_its_input_like_capa():
    make_user("alice", enroll=True)
    html = logged_in("alice").get(f"/xblock/{P1}").content.decode()
    assert re.search(r'name="input_p1_2_1"', html)


def test_pages_other_than_the_exempt_ones_carry_x_frame_options():
    assert DirectClient().get("/login")["X-Frame-Options"] == "SAMEORIGIN"


def test_handler_noauth_runs_for_an_unknown_user_and_stores_nothing():
    from lms.djangoapps.courseware.models import StudentModule  # pylint: disable=import-outside-toplevel

    make_user("alice")
    client = logged_in("alice")
    url = HANDLER.replace("/handler/", "/handler_noauth/")
    response = client.post(url, ANSWER, HTTP_ORIGIN="https://evil.test")  # csrf_exempt
    assert response.status_code == 200
    body = json.loads(response.content)
    assert body["success"] == "correct" and body["current_score"] == 0.0
    assert not StudentModule.objects.exists()


def test_a_password_change_ends_the_session():
    user = make_user("alice")
    client = logged_in("alice")
    user.set_password("another-pw-1")
    user.save()
    response = client.get("/api/user/v1/me")
    assert response.status_code == 401
    assert client.cookies["sessionid"].value == ""
