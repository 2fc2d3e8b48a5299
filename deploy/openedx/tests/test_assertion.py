"""Verifying the assertion against a real JWKS served over HTTP."""

import time

import pytest

from ltigate_openedx import USER_AGENT, assertion
from ltigate_openedx.assertion import AssertionInvalid, JwksCache

from .conftest import ALICE, alg_none, claims_for, hs256_with_public_key


def test_a_good_assertion_verifies(mint, gateway):
    claims = assertion.verify(mint())
    assert claims["sub"] == ALICE
    assert claims["usage_key"].startswith("block-v1:")
    assert len(gateway.jwks_fetches) == 1
    assert gateway.jwks_fetches[0]["User-Agent"] == USER_AGENT


def test_the_jwks_is_cached(mint, gateway):
    for _ in range(5):
        assertion.verify(mint())
    assert len(gateway.jwks_fetches) == 1


def test_an_array_audience_containing_ours_verifies(mint):
    assert assertion.verify(mint(aud=["other", "openedx"]))["sub"] == ALICE


@pytest.mark.parametrize(
    "claims, reason",
    [
        ({"iss": "http://evil.test"}, "issuer"),
        ({"iss": None}, "iss"),
        ({"aud": "lms"}, "audience"),
        ({"aud": None}, "aud"),
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 4000}, "expired"),
        ({"exp": None}, "exp"),
        ({"iat": None}, "iat"),
        ({"sub": "admin"}, "sub"),
        ({"sub": ""}, "sub"),
        ({"sub": None}, "sub"),
        ({"sub": "lti_0123456789ABCDEF01234567"}, "sub"),
    ],
)
def test_bad_claims_are_refused(mint, claims, reason):
    sub = claims.pop("sub", ALICE)
    with pytest.raises(AssertionInvalid, match=f"(?i){reason}"):
        assertion.verify(mint(sub=sub, **claims))


def test_expiry_has_a_small_leeway(mint, settings):
    settings.LTIGATE_LEEWAY_SECONDS = 30
    now = int(time.time())
    assert assertion.verify(mint(exp=now - 10, iat=now - 300))
    with pytest.raises(AssertionInvalid, match="(?i)expired"):
        assertion.verify(mint(exp=now - 60, iat=now - 300))


def test_hs256_keyed_with_the_public_key_is_refused(keys):
    with pytest.raises(AssertionInvalid, match="RS256"):
        assertion.verify(hs256_with_public_key(keys, claims_for()))


def test_alg_none_is_refused():
    with pytest.raises(AssertionInvalid, match="RS256"):
        assertion.verify(alg_none(claims_for()))


def test_a_token_without_kid_is_refused(keys):
    import jwt

    token = jwt.encode(claims_for(), keys["ltigate-1"].private, algorithm="RS256")
    with pytest.raises(AssertionInvalid, match="kid"):
        assertion.verify(token)


def test_garbage_is_refused():
    for token in ("", "x", "a.b.c", "eyJhbGciOiJSUzI1NiJ9..."):
        with pytest.raises(AssertionInvalid):
            assertion.verify(token)


def test_a_signature_by_another_key_under_a_known_kid_is_refused(mint):
    with pytest.raises(AssertionInvalid, match="(?i)signature"):
        assertion.verify(mint(key="attacker", kid="ltigate-1"))


def test_an_unknown_kid_refetches_the_jwks_once(mint, keys, gateway, settings):
    settings.LTIGATE_JWKS_MIN_REFETCH_INTERVAL = 0
    assertion.verify(mint())
    # ltigate rotates to a new key.
    gateway.jwks = {"keys": [keys["ltigate-1"].jwk, keys["ltigate-2"].jwk]}
    assert assertion.verify(mint(key="ltigate-2"))["sub"] == ALICE
    assert len(gateway.jwks_fetches) == 2
    assertion.verify(mint(key="ltigate-2"))
    assert len(gateway.jwks_fetches) == 2


def test_unknown_kid_refetches_are_rate_limited(mint, gateway, settings):
    settings.LTIGATE_JWKS_MIN_REFETCH_INTERVAL = 60
    assertion.verify(mint())
    for _ in range(5):
        with pytest.raises(AssertionInvalid, match="unknown kid"):
            assertion.verify(mint(key="attacker", kid="forged"))
    # Fetched at start, and not again within the interval.
    assert len(gateway.jwks_fetches) == 1


def test_a_stale_cache_is_refetched_and_kept_when_the_fetch_fails(keys, gateway):
    now = [1000.0]
    cache = JwksCache(f"{gateway.url}/lti/1p3/pub/jwks/", ttl=300, min_refetch=10, timeout=2, clock=lambda: now[0])
    assert cache.get("ltigate-1") is not None
    now[0] += 100
    cache.get("ltigate-1")
    assert cache.fetches == 1
    now[0] += 300
    cache.url = f"{gateway.url}/missing"
    # The refetch fails (404): the keys already held stay in use.
    assert cache.get("ltigate-1") is not None
    assert cache.fetches == 2


def test_keys_for_other_algorithms_or_uses_are_ignored(keys, gateway, mint):
    gateway.jwks = {
        "keys": [
            dict(keys["ltigate-1"].jwk, use="enc"),
            dict(keys["ltigate-2"].jwk, alg="RS512"),
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kid": "junk"},
            "not a key",
        ]
    }
    with pytest.raises(AssertionInvalid, match="unknown kid"):
        assertion.verify(mint())
    with pytest.raises(AssertionInvalid, match="unknown kid"):
        assertion.verify(mint(key="ltigate-2"))
