"""Helpers shared by the suite: ltigate's names and the two kinds of browser client."""

import hashlib
import hmac

from django.conf import settings as django_settings
from django.test import Client

LMS_HOST = django_settings.LMS_HOST
GATEWAY_HOST = f"lti.{LMS_HOST}"
GATEWAY_ORIGIN = f"https://{GATEWAY_HOST}"
LMS_ORIGIN = f"https://{LMS_HOST}"
SCORE_TOKEN = "stock-lms-score-token"
# What ltigate's [assertion] username_key would be.
USERNAME_KEY = b"stock-lms-username-key"

# An LTI platform and its user, as a launch names them.
PLATFORM = "https://canvas.test"
CLIENT_ID = "client-1"
DEPLOYMENT_ID = "deployment-1"


def gateway_username(sub, issuer=PLATFORM, client_id=CLIENT_ID):
    """ltigate's upstream username: lti_ + 24 hex digits of HMAC-SHA256(key, iss NUL client_id NUL sub)."""
    tag = hmac.new(USERNAME_KEY, f"{issuer}\0{client_id}\0{sub}".encode(), hashlib.sha256).hexdigest()
    return "lti_" + tag[:24]


class DirectClient(Client):
    """A browser on the LMS's own host, through Caddy over HTTPS."""

    def __init__(self, **defaults):
        defaults.setdefault("HTTP_HOST", LMS_HOST)
        defaults.setdefault("HTTP_X_FORWARDED_PROTO", "https")
        defaults.setdefault("HTTP_X_FORWARDED_FOR", "203.0.113.7")
        super().__init__(enforce_csrf_checks=True, **defaults)

    def csrf_token(self):
        cookie = self.cookies.get("csrftoken")
        return cookie.value if cookie else None


class GatewayClient(DirectClient):
    """A browser on ltigate's host: what ltigate forwards to the LMS.

    ltigate sends ``Host: <LMS_HOST>`` (its ``[upstream] host``), its own
    ``X-Forwarded-Proto``/``X-Forwarded-Host``/``X-Forwarded-For``, the LMS
    cookies the LMS set, and its assertion (``self.assertion``, None: no header).
    """

    def __init__(self, assertion=None, **defaults):
        defaults.setdefault("HTTP_X_FORWARDED_HOST", GATEWAY_HOST)
        super().__init__(**defaults)
        self.assertion = assertion

    def request(self, **request):
        if self.assertion is not None:
            request.setdefault("HTTP_X_LTIGATE_ASSERTION", self.assertion)
        return super().request(**request)
