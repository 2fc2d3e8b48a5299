"""Fixtures: ltigate's side, as the LMS sees it.

- an RSA key of ltigate's and a real local HTTP server (127.0.0.1:0) serving
  its JWKS and taking its score API calls;
- assertions signed RS256 with the claims ltigate's ``src/assertion.rs`` builds;
- clients that reach the LMS the two ways a browser does (``testsupport.py``).
"""

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings as django_settings

from stock_lms.fixture_course import COURSE_ID, UNIT1
from testsupport import CLIENT_ID, DEPLOYMENT_ID, PLATFORM, SCORE_TOKEN, DirectClient, GatewayClient, gateway_username


def _b64(number):
    return base64.urlsafe_b64encode(number.to_bytes((number.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()


class GatewayKey:
    def __init__(self, kid):
        self.kid = kid
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = self.private.public_key().public_numbers()
        # ltigate publishes kty/kid/n/e with alg RS256 and use sig.
        self.jwk = {"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": _b64(numbers.n), "e": _b64(numbers.e)}


class GatewayServer:
    """ltigate's JWKS and score API, on a real socket."""

    def __init__(self):
        self.jwks = {"keys": []}
        self.score_requests = []
        self.url = None


def _handler(state):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # pylint: disable=arguments-differ
            pass

        def _reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # pylint: disable=invalid-name
            if self.path == "/lti/1p3/pub/jwks/":
                self._reply(200, state.jwks)
            else:
                self._reply(404, {"error": "not found"})

        def do_POST(self):  # pylint: disable=invalid-name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path != "/scores":
                self._reply(404, {"error": "not found"})
                return
            state.score_requests.append({"headers": dict(self.headers), "json": json.loads(body)})
            if self.headers.get("Authorization") != f"Bearer {SCORE_TOKEN}":
                self._reply(401, {"error": "bad token"})
            else:
                self._reply(202, {"queued": []})

    return Handler


@pytest.fixture(scope="session")
def gateway_key():
    return GatewayKey("ltigate-1")


@pytest.fixture(scope="session")
def gateway_server():
    state = GatewayServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def gateway(gateway_server, gateway_key, settings):
    """A fresh gateway per test: its JWKS, an empty score log, the app's caches cleared."""
    from ltigate_openedx import assertion  # pylint: disable=import-outside-toplevel

    gateway_server.jwks = {"keys": [gateway_key.jwk]}
    gateway_server.score_requests = []
    settings.LTIGATE_JWKS_URL = f"{gateway_server.url}/lti/1p3/pub/jwks/"
    settings.LTIGATE_SCORE_API_URL = f"{gateway_server.url}/scores"
    settings.LTIGATE_SCORE_API_TOKEN = SCORE_TOKEN
    settings.LTIGATE_SCORE_API_TIMEOUT = 5
    assertion.reset_caches()
    try:
        from ltigate_openedx import seed  # pylint: disable=import-outside-toplevel

        seed.forget()
    except ImportError:
        pass
    yield gateway_server
    assertion.reset_caches()


@pytest.fixture
def mint(gateway_key):
    """mint(lti_sub="42", **overrides) -> an assertion as ltigate signs it for a launch."""

    def mint(lti_sub="42", usage_key=str(UNIT1), course_key=COURSE_ID, launch=True, issuer=PLATFORM,
             client_id=CLIENT_ID, **overrides):
        now = int(time.time())
        claims = {
            "iss": django_settings.LTIGATE_ISSUER.rstrip("/"),
            "aud": django_settings.LTIGATE_AUDIENCE,
            "sub": gateway_username(lti_sub, issuer, client_id),
            "iat": now,
            "exp": now + 300,
            "roles": ["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"] if launch else [],
            "course_key": course_key,
            "usage_key": usage_key,
            "lti": {
                "issuer": issuer,
                "client_id": client_id,
                "deployment_id": DEPLOYMENT_ID if launch else "",
                "sub": lti_sub,
            },
        }
        if launch:
            claims.update(
                {
                    "email": f"learner{lti_sub}@canvas.test",
                    "name": f"Learner {lti_sub}",
                    "given_name": "Learner",
                    "family_name": lti_sub,
                    "resource_link_id": "rl-1",
                }
            )
        for name, value in overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return jwt.encode(claims, gateway_key.private, algorithm="RS256", headers={"kid": gateway_key.kid})

    return mint


@pytest.fixture
def direct_client():
    return DirectClient()


@pytest.fixture
def gateway_client():
    return GatewayClient()

