"""The settings this app reads, with their defaults (see README.md)."""

from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULTS = {
    # ltigate's public URL (its [server] public_url): the assertion's `iss`.
    "LTIGATE_ISSUER": None,
    # ltigate's JWKS. Default: <LTIGATE_ISSUER>/lti/1p3/pub/jwks/
    "LTIGATE_JWKS_URL": None,
    # The assertion's `aud` (ltigate's [assertion] audience).
    "LTIGATE_AUDIENCE": "openedx",
    # The request header carrying the assertion (ltigate's [assertion] header).
    "LTIGATE_ASSERTION_HEADER": "X-Ltigate-Assertion",
    # Clock skew allowed on exp/iat/nbf, in seconds.
    "LTIGATE_LEEWAY_SECONDS": 30,
    # How long a fetched JWKS is used before it is fetched again.
    "LTIGATE_JWKS_CACHE_TTL": 300,
    # An unknown kid (or a stale cache) refetches at most this often.
    "LTIGATE_JWKS_MIN_REFETCH_INTERVAL": 10,
    # Timeout of one JWKS fetch, in seconds.
    "LTIGATE_JWKS_TIMEOUT": 5,
    # `sub` must match this: ltigate's usernames are lti_ + 24 hex digits.
    "LTIGATE_USERNAME_PATTERN": r"^lti_[0-9a-f]{24}$",
    # Users without an email claim (or whose email another account uses) get
    # <username>@<this domain>.
    "LTIGATE_USER_EMAIL_DOMAIN": "ltigate.invalid",
    # The authentication backend recorded in the session. Default: the first
    # ModelBackend subclass in AUTHENTICATION_BACKENDS.
    "LTIGATE_AUTH_BACKEND": None,
    # ltigate's score API, e.g. http://ltigate:8081/scores. Unset: no hook.
    "LTIGATE_SCORE_API_URL": None,
    # Its bearer token (ltigate's [grades] token).
    "LTIGATE_SCORE_API_TOKEN": None,
    # Timeout of one score API call, in seconds.
    "LTIGATE_SCORE_API_TIMEOUT": 15,
    # Celery retries of one score report (exponential back-off, max 10 min).
    "LTIGATE_SCORE_MAX_RETRIES": 12,
    # The mode learners are enrolled in, in the course an assertion names;
    # "none": no enrollment.
    "LTIGATE_ENROLLMENT_MODE": "audit",
    # The platform seam: "openedx", "fake" (tests only) or a dotted path.
    "LTIGATE_PLATFORM": "openedx",
}


def get(name):
    """The value of setting ``name``, or its default."""
    return getattr(settings, name, DEFAULTS[name])


def issuer():
    value = get("LTIGATE_ISSUER")
    if not value:
        raise ImproperlyConfigured("LTIGATE_ISSUER (ltigate's public URL) is required")
    # ltigate signs with its public origin, without a trailing slash.
    return value.rstrip("/")


def gateway_origin():
    """ltigate's public origin as a browser serialises it in ``Origin``:
    scheme and host in lower case, without a default port or any path."""
    parts = urlsplit(issuer())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    port = parts.port
    if port is not None and (scheme, port) not in (("https", 443), ("http", 80)):
        host = f"{host}:{port}"
    return f"{scheme}://{host}"


def jwks_url():
    return get("LTIGATE_JWKS_URL") or f"{issuer()}/lti/1p3/pub/jwks/"


def meta_key():
    """The request.META key of the assertion header.

    WSGI maps both ``X-Ltigate-Assertion`` and ``X_Ltigate_Assertion`` to this
    key, which is why ltigate strips every client copy of the header.
    """
    return "HTTP_" + get("LTIGATE_ASSERTION_HEADER").upper().replace("-", "_")
