"""Django's real CsrfViewMiddleware, behind the gateway.

The test settings run django.middleware.csrf.CsrfViewMiddleware; the client
enforces CSRF checks as a browser's requests would meet them.
"""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from ltigate_openedx import conf

from . import urls
from .conftest import ALICE

pytestmark = pytest.mark.django_db
User = get_user_model()

GATEWAY = "http://gateway.test"
LMS = "http://testserver"


@pytest.fixture
def browser(mint):
    """A browser that launched through the gateway: logged in, with a csrftoken."""
    urls.CALLS.clear()
    client = Client(enforce_csrf_checks=True)
    response = client.get("/whoami", HTTP_X_LTIGATE_ASSERTION=mint())
    assert response.json()["user"] == ALICE
    client.token = client.cookies["csrftoken"].value
    return client


def post(client, path, token=None, assertion=None, **headers):
    if token is not None:
        headers["HTTP_X_CSRFTOKEN"] = token
    if assertion is not None:
        headers["HTTP_X_LTIGATE_ASSERTION"] = assertion
    return client.post(path, {"event": "x"}, **headers)


def refused_because(caplog, reason):
    return any(reason in r.getMessage() for r in caplog.records if r.name == "django.security.csrf")


@pytest.mark.parametrize("path", ["/event", "/handler"])
def test_a_post_with_the_gateways_origin_and_a_valid_assertion_passes(browser, mint, path):
    response = post(browser, path, browser.token, mint(), HTTP_ORIGIN=GATEWAY)
    assert response.status_code == 200
    assert urls.CALLS[-1] == path


@pytest.mark.parametrize("path", ["/event", "/handler"])
def test_the_token_is_still_checked(browser, mint, path, caplog):
    response = post(browser, path, "x" * 32, mint(), HTTP_ORIGIN=GATEWAY)
    assert response.status_code == 403
    assert refused_because(caplog, "CSRF token from the 'X-Csrftoken' HTTP header incorrect")
    assert post(browser, path, None, mint(), HTTP_ORIGIN=GATEWAY).status_code == 403


@pytest.mark.parametrize("origin", ["https://evil.test", "null", "http://gateway.test.evil.test", "https://gateway.test"])
@pytest.mark.parametrize("path", ["/event", "/handler"])
def test_another_origin_with_a_valid_assertion_is_refused(browser, mint, path, origin, caplog):
    response = post(browser, path, browser.token, mint(), HTTP_ORIGIN=origin)
    assert response.status_code == 403
    assert refused_because(caplog, f"Origin checking failed - {origin} does not match any trusted origins")


@pytest.mark.parametrize("path", ["/event", "/handler"])
def test_the_gateways_origin_without_an_assertion_is_refused(mint, path, caplog):
    # A session logged in directly (not marked as the gateway's), so that the
    # request is not refused for being anonymous.
    direct = Client(enforce_csrf_checks=True)
    direct.force_login(User.objects.create_user("someone"), backend="tests.backends.LmsLikeModelBackend")
    direct.get("/whoami")
    token = direct.cookies["csrftoken"].value
    # The same request from the LMS's own origin passes: only the origin differs.
    assert post(direct, path, token, HTTP_ORIGIN=LMS).status_code == 200
    response = post(direct, path, token, HTTP_ORIGIN=GATEWAY)
    assert response.status_code == 403
    assert refused_because(caplog, f"Origin checking failed - {GATEWAY}")


def test_a_bad_assertion_gets_no_rewrite(browser, mint):
    # Refused by the assertion middleware itself, before any view.
    response = post(browser, "/event", browser.token, mint(key="attacker"), HTTP_ORIGIN=GATEWAY)
    assert response.status_code == 403
    assert urls.CALLS == ["/whoami"]


@pytest.fixture
def https(settings, mint):
    """The gateway and the LMS over HTTPS, the LMS behind a TLS-terminating proxy."""
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.LTIGATE_ISSUER = "https://gateway.test"
    urls.CALLS.clear()
    client = Client(enforce_csrf_checks=True)
    assertion = lambda: mint(iss="https://gateway.test")  # noqa: E731
    client.get("/whoami", HTTP_X_LTIGATE_ASSERTION=assertion(), secure=True, HTTP_X_FORWARDED_PROTO="https")
    client.token = client.cookies["csrftoken"].value
    client.assertion = assertion
    return client


def secure_post(client, path, **headers):
    return post(
        client, path, client.token, client.assertion(), secure=True, HTTP_X_FORWARDED_PROTO="https", **headers
    )


@pytest.mark.parametrize("path", ["/event", "/handler"])
def test_over_https_a_referer_from_the_gateway_passes(https, path):
    assert secure_post(https, path, HTTP_REFERER="https://gateway.test/xblock/block-v1:a+b+c").status_code == 200
    assert secure_post(https, path, HTTP_REFERER="https://gateway.test").status_code == 200
    assert secure_post(https, path, HTTP_ORIGIN="https://gateway.test").status_code == 200


@pytest.mark.parametrize(
    "referer, reason",
    [
        ("https://evil.test/page", "Referer checking failed"),
        ("https://gateway.test.evil.test/page", "Referer checking failed"),
        ("http://gateway.test/page", "Referer checking failed - Referer is insecure"),
        (None, "Referer checking failed - no Referer"),
    ],
)
def test_over_https_another_referer_is_refused(https, caplog, referer, reason):
    headers = {} if referer is None else {"HTTP_REFERER": referer}
    assert secure_post(https, "/event", **headers).status_code == 403
    assert refused_because(caplog, reason)


def test_over_https_a_gateway_referer_without_an_assertion_is_refused(https, caplog):
    response = post(
        https, "/event", https.token, secure=True, HTTP_X_FORWARDED_PROTO="https",
        HTTP_REFERER="https://gateway.test/page",
    )
    assert response.status_code == 403


@pytest.mark.parametrize(
    "issuer, origin",
    [
        ("https://lti.example.edu", "https://lti.example.edu"),
        ("https://LTI.Example.edu/", "https://lti.example.edu"),
        ("https://lti.example.edu:443/lti", "https://lti.example.edu"),
        ("http://lti.example.edu:80", "http://lti.example.edu"),
        ("https://lti.example.edu:8443", "https://lti.example.edu:8443"),
    ],
)
def test_the_gateway_origin_is_the_issuers_origin(settings, issuer, origin):
    settings.LTIGATE_ISSUER = issuer
    assert conf.gateway_origin() == origin
