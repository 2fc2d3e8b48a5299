"""Fixtures: a real local HTTP server (JWKS and score API), RSA keys, tokens."""

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from celery import Celery
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ltigate_openedx import assertion, platform

ISSUER = "http://gateway.test"
AUDIENCE = "openedx"
ALICE = "lti_0123456789abcdef01234567"
BOB = "lti_89abcdef0123456789abcdef"
COURSE = "course-v1:OrgX+CS101+2026"
UNIT = "block-v1:OrgX+CS101+2026+type@vertical+block@u1"
PROBLEM = "block-v1:OrgX+CS101+2026+type@problem+block@p1"

# Celery: run tasks in-process, as a worker would, without a broker.
_celery = Celery("ltigate-openedx-tests")
_celery.conf.task_always_eager = True
_celery.conf.task_eager_propagates = False
_celery.set_default()


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_b64(n):
    return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


class Key:
    def __init__(self, kid):
        self.kid = kid
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = self.private.public_key().public_numbers()
        # Shaped like Open edX's and ltigate's keys: no alg, no use.
        self.jwk = {"kty": "RSA", "kid": kid, "n": _int_b64(numbers.n), "e": _int_b64(numbers.e), "key_ops": ["verify"]}
        self.public_pem = self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@pytest.fixture(scope="session")
def keys():
    return {kid: Key(kid) for kid in ("ltigate-1", "ltigate-2", "attacker")}


class Recorder:
    """State of the local server: what it serves and what it was sent."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.jwks = {"keys": []}
        self.jwks_fetches = []
        self.score_statuses = []
        self.score_requests = []


class Handler(BaseHTTPRequestHandler):
    recorder = None

    def log_message(self, *args):
        pass

    def _reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/lti/1p3/pub/jwks/":
            self.recorder.jwks_fetches.append(dict(self.headers))
            self._reply(200, self.recorder.jwks)
        else:
            self._reply(404, {"error": "not found"})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/scores":
            self.recorder.score_requests.append({"headers": dict(self.headers), "json": json.loads(body)})
            status = self.recorder.score_statuses.pop(0) if self.recorder.score_statuses else 202
            self._reply(status, {"queued": []} if status == 202 else {"error": "test"})
        else:
            self._reply(404, {"error": "not found"})


@pytest.fixture(scope="session")
def server():
    recorder = Recorder()
    handler = type("BoundHandler", (Handler,), {"recorder": recorder})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    recorder.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield recorder
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def gateway(server, keys, settings):
    """A fresh gateway for each test: JWKS with ltigate-1, an empty score log."""
    server.reset()
    server.jwks = {"keys": [keys["ltigate-1"].jwk]}
    settings.LTIGATE_JWKS_URL = f"{server.url}/lti/1p3/pub/jwks/"
    settings.LTIGATE_SCORE_API_URL = f"{server.url}/scores"
    assertion.reset_caches()
    platform.get().reset()
    yield server
    assertion.reset_caches()


@pytest.fixture
def fake():
    return platform.get()


def claims_for(sub=ALICE, **extra):
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "iat": now,
        "exp": now + 300,
        "email": f"{sub}@example.edu",
        "name": "Alice Example",
        "given_name": "Alice",
        "family_name": "Example",
        "roles": [],
        "course_key": COURSE,
        "usage_key": UNIT,
        "lti": {"issuer": "https://canvas.test", "client_id": "c1", "deployment_id": "d1", "sub": "42"},
    }
    for name, value in extra.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


@pytest.fixture
def mint(keys):
    """mint(key="ltigate-1", kid=None, **claims) -> an RS256 assertion."""

    def mint(key="ltigate-1", kid=None, sub=ALICE, **claims):
        signer = keys[key]
        return jwt.encode(
            claims_for(sub, **claims),
            signer.private,
            algorithm="RS256",
            headers={"kid": kid or signer.kid},
        )

    return mint


def hs256_with_public_key(keys, claims):
    """The key-confusion attack: HS256 keyed with the RSA public key's PEM."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "ltigate-1"}).encode())
    payload = b64url(json.dumps(claims).encode())
    signing_input = f"{header}.{payload}".encode()
    mac = hmac.new(keys["ltigate-1"].public_pem, signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(mac)}"


def alg_none(claims):
    header = b64url(json.dumps({"alg": "none", "typ": "JWT", "kid": "ltigate-1"}).encode())
    return f"{header}.{b64url(json.dumps(claims).encode())}."
