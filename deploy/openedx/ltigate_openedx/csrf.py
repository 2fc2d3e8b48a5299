"""Letting Django's CSRF check accept the gateway's origin, and only on
requests that came through the gateway.

Behind ltigate the browser is on ltigate's host: its POSTs (XBlock handlers,
``/event``) carry ``Origin: https://lti.example.edu`` (ltigate's public
origin, the issuer of its assertion), while the LMS sees its own ``Host``.
Django's ``CsrfViewMiddleware.process_view`` (django/middleware/csrf.py)
compares ``Origin`` with ``"https" if request.is_secure() else "http"`` +
``://`` + ``request.get_host()`` or ``CSRF_TRUSTED_ORIGINS``
(``_origin_verified``), and, over HTTPS without ``Origin``, the ``Referer``'s
host with ``request.get_host()`` or the cookie domain (``_check_referer``).
edx-platform's ``handle_xblock_callback``
(lms/djangoapps/courseware/block_render.py) runs that same ``process_view``
itself for logged-in users. So a plain LMS refuses every such POST.

``trust_gateway_origin`` runs in the assertion middleware's ``__call__``,
before any view and so before every ``process_view`` (which Django calls
after all middleware ``__call__`` code ran). On a request carrying a VALID
assertion only, it replaces an ``Origin`` exactly equal to ltigate's origin
with the origin Django will compare against, and likewise rewrites a
``Referer`` that is ltigate's origin or starts with it followed by ``/``.
Anything else (another origin, ``null``, no assertion, a bad one) is left
as it is, so Django still refuses it.

Why this is safe:

- The CSRF token check still applies: the POST must carry ``X-CSRFToken``
  (or ``csrfmiddlewaretoken``) matching the ``csrftoken`` cookie. Only the
  origin check is satisfied, and only for the gateway's own origin.
- Only ltigate can mint the assertion (RS256, its private key), and it strips
  every client copy of the header before forwarding: a request reaching the
  LMS directly, or through the gateway with a forged header, has no valid
  assertion and is left alone.
- A cross-site page that makes the learner's browser POST through the
  gateway sends its own ``Origin`` (or ``null``), which is never rewritten,
  so Django refuses it as before. The gateway origin is the only one that is
  mapped, and the browser, not the page, sets ``Origin``.

This is narrower than adding ltigate's origin to ``CSRF_TRUSTED_ORIGINS``,
which would trust it on every request, with or without an assertion.
"""

from django.core.exceptions import DisallowedHost

from . import conf


def own_origin(request):
    """The origin Django's CSRF check compares ``Origin`` with."""
    return f"{'https' if request.is_secure() else 'http'}://{request.get_host()}"


def trust_gateway_origin(request):
    """Maps ltigate's origin to the LMS's own in ``Origin`` and ``Referer``.

    Call only for a request whose assertion verified.
    """
    gateway = conf.gateway_origin()
    meta = request.META
    origin = meta.get("HTTP_ORIGIN")
    referer = meta.get("HTTP_REFERER")
    rewrite_origin = origin == gateway
    rewrite_referer = isinstance(referer, str) and (referer == gateway or referer.startswith(gateway + "/"))
    if not (rewrite_origin or rewrite_referer):
        return
    try:
        own = own_origin(request)
    except DisallowedHost:
        # Django's check refuses such a request anyway.
        return
    if rewrite_origin:
        meta["HTTP_ORIGIN"] = own
    if rewrite_referer:
        meta["HTTP_REFERER"] = own + referer[len(gateway):]
