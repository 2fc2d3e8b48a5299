"""Verifying ltigate's assertion: an RS256 JWT checked against ltigate's JWKS."""

import logging
import re
import threading
import time

import jwt
import requests

from . import USER_AGENT, conf

log = logging.getLogger(__name__)


class AssertionInvalid(Exception):
    """The assertion failed verification. The message is safe to log."""


class JwksCache:
    """ltigate's public keys, fetched from its JWKS URL and cached.

    The set is used for ``ttl`` seconds after a successful fetch. A ``kid``
    that is not in the set triggers one refetch (key rotation), but fetches
    happen at most every ``min_refetch`` seconds, so forged kids cannot make
    the LMS hammer the gateway. When a fetch fails, the keys already held
    stay in use.
    """

    def __init__(self, url, ttl, min_refetch, timeout, clock=time.monotonic):
        self.url = url
        self.ttl = ttl
        self.min_refetch = min_refetch
        self.timeout = timeout
        self._clock = clock
        self._keys = {}
        self._fetched_at = None
        self._attempted_at = None
        self._lock = threading.Lock()
        self.fetches = 0

    def get(self, kid):
        """The key for ``kid``, or AssertionInvalid."""
        with self._lock:
            now = self._clock()
            fresh = self._fetched_at is not None and now - self._fetched_at < self.ttl
            if not fresh and self._may_fetch(now):
                self._refresh(now)
            key = self._keys.get(kid)
            if key is None and self._may_fetch(now):
                self._refresh(now)
                key = self._keys.get(kid)
        if key is None:
            raise AssertionInvalid("unknown kid")
        return key

    def _may_fetch(self, now):
        return self._attempted_at is None or now - self._attempted_at >= self.min_refetch

    def _refresh(self, now):
        self._attempted_at = now
        self.fetches += 1
        try:
            response = requests.get(
                self.url,
                timeout=self.timeout,
                headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            )
            response.raise_for_status()
            document = response.json()
            entries = document["keys"]
            if not isinstance(entries, list):
                raise ValueError("keys is not a list")
        except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
            log.warning("ltigate JWKS fetch from %s failed: %s", self.url, exc)
            return
        keys = {}
        for entry in entries:
            key = _rsa_key(entry)
            if key is not None:
                keys[entry["kid"]] = key
        self._keys = keys
        self._fetched_at = now


def _rsa_key(entry):
    """A verification key from one JWK, or None when it is not an RS256 key.

    Keys without ``alg`` are RSA keys used with RS256; ``use`` other than
    ``sig`` and ``alg`` other than RS256 are skipped.
    """
    if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
        return None
    if entry.get("kty") != "RSA":
        return None
    if entry.get("use") not in (None, "sig") or entry.get("alg") not in (None, "RS256"):
        return None
    try:
        return jwt.PyJWK(entry, algorithm="RS256").key
    except jwt.PyJWTError:
        return None


_caches = {}
_caches_lock = threading.Lock()


def jwks_cache():
    """The process-wide cache for the configured JWKS URL and timings."""
    config = (
        conf.jwks_url(),
        conf.get("LTIGATE_JWKS_CACHE_TTL"),
        conf.get("LTIGATE_JWKS_MIN_REFETCH_INTERVAL"),
        conf.get("LTIGATE_JWKS_TIMEOUT"),
    )
    with _caches_lock:
        cache = _caches.get(config)
        if cache is None:
            cache = _caches[config] = JwksCache(*config)
        return cache


def reset_caches():
    """Forget every cached JWKS (tests)."""
    with _caches_lock:
        _caches.clear()


def verify(token):
    """The claims of a valid assertion, or AssertionInvalid.

    RS256 only, with a ``kid`` found in ltigate's JWKS; ``iss``, ``aud``,
    ``exp`` and ``iat`` are required and checked (with the configured
    leeway), and ``sub`` must be one of ltigate's usernames.
    """
    if not isinstance(token, str) or not token:
        raise AssertionInvalid("empty assertion")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise AssertionInvalid(f"malformed: {exc}") from None
    if header.get("alg") != "RS256":
        raise AssertionInvalid("algorithm is not RS256")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise AssertionInvalid("no kid")
    key = jwks_cache().get(kid)
    try:
        claims = jwt.decode(
            token,
            key=key,
            algorithms=["RS256"],
            audience=conf.get("LTIGATE_AUDIENCE"),
            issuer=conf.issuer(),
            leeway=conf.get("LTIGATE_LEEWAY_SECONDS"),
            options={"require": ["iss", "aud", "exp", "iat", "sub"]},
        )
    except jwt.PyJWTError as exc:
        raise AssertionInvalid(f"{type(exc).__name__}: {exc}") from None
    sub = claims.get("sub")
    if not isinstance(sub, str) or not re.fullmatch(conf.get("LTIGATE_USERNAME_PATTERN"), sub):
        raise AssertionInvalid("sub is not an ltigate username")
    return claims
