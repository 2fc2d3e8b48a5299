"""Plugin settings, applied while the LMS loads its common settings."""

MIDDLEWARE_PATH = "ltigate_openedx.middleware.LtigateAssertionMiddleware"

# The assertion middleware needs request.session and request.user: it goes
# right after the first of these that the LMS uses.
AUTH_MIDDLEWARE = (
    "openedx.core.djangoapps.cache_toolbox.middleware.CacheBackedAuthenticationMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
)


def plugin_settings(settings):
    """Adds the assertion middleware to MIDDLEWARE (once)."""
    middleware = list(getattr(settings, "MIDDLEWARE", []))
    if MIDDLEWARE_PATH in middleware:
        return
    for anchor in AUTH_MIDDLEWARE:
        if anchor in middleware:
            middleware.insert(middleware.index(anchor) + 1, MIDDLEWARE_PATH)
            break
    else:
        middleware.append(MIDDLEWARE_PATH)
    settings.MIDDLEWARE = middleware
