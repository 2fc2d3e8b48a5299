"""Settings of the stock-behaviour LMS, in the order the real LMS builds them.

1. ``openedx/envs/common.py`` + ``lms/envs/common.py`` (edx-platform master):
   the defaults, ``MIDDLEWARE``, ``INSTALLED_APPS`` with the plugin apps, then
   the plugins' *common* settings (``add_plugins(..., SettingsType.COMMON)``,
   at the end of ``lms/envs/common.py``);
2. ``lms/envs/production.py``: ``SESSION_COOKIE_SAMESITE`` from
   ``DCS_SESSION_COOKIE_SAMESITE``, then the plugins' *production* settings;
3. Tutor v21 (``overhangio/tutor`` ``tutor/templates/apps/openedx/settings/lms/production.py``,
   ``partials/common_all.py``, ``config/lms.env.yml``, ``config/partials/auth.yml``),
   which imports ``lms.envs.production`` and overrides; its
   ``openedx-lms-common-settings`` patch is where ltigate's Tutor plugin puts
   the ``LTIGATE_*`` settings, *after* the plugin settings ran.

Environment: ``STOCK_LMS_DB`` (SQLite file; default in-memory), ``STOCK_LMS_HOST``
(Tutor's ``LMS_HOST``, default ``lms.test``), ``STOCK_LMS_ENABLE_HTTPS`` (Tutor's
``ENABLE_HTTPS``, default ``1``), ``LTIGATE_ISSUER`` (default
``https://lti.<LMS_HOST>``), ``LTIGATE_JWKS_URL``, ``LTIGATE_AUDIENCE`` (default
``openedx``), ``LTIGATE_SCORE_API_URL``, ``LTIGATE_SCORE_API_TOKEN``,
``LTIGATE_ENROLLMENT_MODE`` (unset: the app's default).
"""

import os
import sys
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from edx_django_utils.plugins import add_plugins, get_plugin_apps

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent.parent
# Test the app's current source (deploy/openedx), ahead of any installed copy.
APP_SOURCE = REPO / "deploy" / "openedx"
if (APP_SOURCE / "ltigate_openedx").is_dir() and str(APP_SOURCE) not in sys.path:
    sys.path.insert(0, str(APP_SOURCE))

# edx-platform openedx/core/djangoapps/plugins/constants.py
LMS_PROJECT_TYPE = "lms.djangoapp"  # ProjectType.LMS
SETTINGS_COMMON = "common"  # SettingsType.COMMON
SETTINGS_PRODUCTION = "production"  # SettingsType.PRODUCTION

######################## openedx/envs/common.py, lms/envs/common.py ########################

DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
USE_I18N = True
LANGUAGE_CODE = "en"
SECRET_KEY = os.environ.get("STOCK_LMS_SECRET_KEY", "stock-lms-not-a-secret")
ROOT_URLCONF = "lms.urls"  # Derived(lambda settings: f'{settings.SERVICE_VARIANT}.urls')
SERVICE_VARIANT = "lms"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

# The server must sit behind a proxy that sets (and strips client copies of) X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

SESSION_COOKIE_DOMAIN = None
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_NAME = "sessionid"
SESSION_COOKIE_SECURE = False
SESSION_SAVE_EVERY_REQUEST = False
# The LMS keeps sessions in its cache (Redis under Tutor), shared by every LMS process;
# here the database plays that part, shared by the processes through STOCK_LMS_DB.
SESSION_ENGINE = "django.contrib.sessions.backends.db"

CSRF_COOKIE_AGE = 60 * 60 * 24 * 7 * 52
CSRF_TRUSTED_ORIGINS = []
CSRF_COOKIE_SECURE = False

ALLOWED_HOSTS = ["*"]
X_FRAME_OPTIONS = "DENY"

# lms/envs/common.py (Ulmo, Tutor v21): no plain ModelBackend, a subclass of it between
# two permission backends that authenticate nobody.
AUTHENTICATION_BACKENDS = [
    "rules.permissions.ObjectPermissionBackend",
    "openedx.core.djangoapps.oauth_dispatch.dot_overrides.backends.EdxRateLimitedAllowAllUsersModelBackend",
    "bridgekeeper.backends.RulePermissionBackend",
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.MD5PasswordHasher",  # only so the pytest suite's users are quick to create
]
AUTOMATIC_AUTH_FOR_TESTING = False

EDX_ROOT_URL = ""
LOGIN_REDIRECT_URL = EDX_ROOT_URL + "/login"
LOGIN_URL = EDX_ROOT_URL + "/login"

# django-session-cookie middleware (lms/envs/common.py); production.py copies it.
DCS_SESSION_COOKIE_SAMESITE = "None"
DCS_SESSION_COOKIE_SAMESITE_FORCE_ALL = True

LMS_BASE = "localhost:18000"
LMS_ROOT_URL = "https://localhost:18000"
LEARNING_MICROFRONTEND_URL = None
PYTHON_LIB_FILENAME = "python_lib.zip"

# The LMS's middleware, in its order, less the ones that do nothing here (monitoring,
# CORS, JWT cookies, site configuration, language, embargo, ...). ltigate's plugin
# settings insert its middleware right after CacheBackedAuthenticationMiddleware.
MIDDLEWARE = [
    # Resets the request cache (mark_user_change_as_expected lives there).
    "edx_django_utils.cache.middleware.RequestCacheMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Instead of SessionMiddleware, we use a more secure version.
    "openedx.core.djangoapps.safe_sessions.middleware.SafeSessionMiddleware",
    # Instead of AuthenticationMiddleware, we use a cache-backed version.
    "openedx.core.djangoapps.cache_toolbox.middleware.CacheBackedAuthenticationMiddleware",
    # CORS and CSRF
    "django.middleware.csrf.CsrfViewMiddleware",
    # use Django built in clickjacking protection
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "openedx.core.djangoapps.contentserver",
    "lms.djangoapps.courseware.apps.CoursewareConfig",
    "common.djangoapps.student.apps.StudentConfig",
    "common.djangoapps.track",
    "openedx.core.djangoapps.user_api",
    "openedx.core.djangoapps.content.course_overviews.apps.CourseOverviewsConfig",
    "lms.djangoapps.grades.apps.GradesConfig",
    "rules.apps.AutodiscoverRulesConfig",
    "bridgekeeper",
    # This test LMS's own commands (stock_lms_setup).
    "stock_lms.apps.StockLmsConfig",
    # The seed plugin, for its LtiProfile table (installed as a plugin in a real LMS).
    "lti_1p3_provider.apps.Lti1p3ProviderConfig",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("STOCK_LMS_LOG_LEVEL", "WARNING")},
}

############## Plugin Django Apps (end of lms/envs/common.py) ##############
_PLUGIN_APPS = get_plugin_apps(LMS_PROJECT_TYPE)
if not any(app.startswith("ltigate_openedx.") for app in _PLUGIN_APPS):
    raise ImproperlyConfigured(
        "the ltigate-openedx plugin is not registered on the lms.djangoapp entry point: "
        "pip install ./deploy/openedx (its source is imported from the checkout all the same)"
    )
INSTALLED_APPS.extend(_PLUGIN_APPS)
add_plugins(__name__, LMS_PROJECT_TYPE, SETTINGS_COMMON)

######################## lms/envs/production.py ########################
SESSION_COOKIE_SAMESITE = DCS_SESSION_COOKIE_SAMESITE
add_plugins(__name__, LMS_PROJECT_TYPE, SETTINGS_PRODUCTION)

######################## Tutor v21 ########################
LMS_HOST = os.environ.get("STOCK_LMS_HOST", "lms.test")
ENABLE_HTTPS = os.environ.get("STOCK_LMS_ENABLE_HTTPS", "1") not in ("0", "false", "no", "")
_SCHEME = "https" if ENABLE_HTTPS else "http"

# config/lms.env.yml
LMS_BASE = LMS_HOST
LMS_ROOT_URL = f"{_SCHEME}://{LMS_HOST}"
SESSION_COOKIE_DOMAIN = LMS_HOST

# settings/lms/production.py
ALLOWED_HOSTS = [LMS_BASE, "lms"]
if ENABLE_HTTPS:
    # Properly set the "secure" attribute on session/csrf cookies (needed for SameSite=None).
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SESSION_COOKIE_SAMESITE = "None"
else:
    SESSION_COOKIE_SECURE = False
    CSRF_COOKIE_SECURE = False
    SESSION_COOKIE_SAMESITE = "Lax"

# settings/partials/common_all.py: allow the platform to include itself in an iframe.
X_FRAME_OPTIONS = "SAMEORIGIN"
LANGUAGE_COOKIE_NAME = "openedx-language-preference"

# config/partials/auth.yml: DATABASES default with ATOMIC_REQUESTS (MySQL there).
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("STOCK_LMS_DB") or ":memory:",
        "ATOMIC_REQUESTS": True,
        # Two server processes share the file: wait for its lock (20 s), take the write lock
        # when a transaction starts (ATOMIC_REQUESTS: no read-to-write upgrade that SQLite
        # refuses at once), and let readers go on while one writes (WAL).
        "OPTIONS": {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
}

# tutor-mfe (overhangio/tutor-mfe, its openedx-lms-*-settings patch): MFE_HOST = apps.<LMS_HOST>.
LEARNING_MICROFRONTEND_URL = f"{_SCHEME}://apps.{LMS_HOST}/learning"

# Celery: Tutor runs a broker and an lms-worker; here tasks run eagerly, in the request
# (see lms/celery.py).
CELERY_TASK_ALWAYS_EAGER = True

# openedx-lms-common-settings, as ltigate's Tutor plugin patches it (deploy/tutor).
LTIGATE_ISSUER = os.environ.get("LTIGATE_ISSUER", f"https://lti.{LMS_HOST}")
if os.environ.get("LTIGATE_JWKS_URL"):
    LTIGATE_JWKS_URL = os.environ["LTIGATE_JWKS_URL"]
LTIGATE_AUDIENCE = os.environ.get("LTIGATE_AUDIENCE", "openedx")
if os.environ.get("LTIGATE_SCORE_API_URL"):
    LTIGATE_SCORE_API_URL = os.environ["LTIGATE_SCORE_API_URL"]
if os.environ.get("LTIGATE_SCORE_API_TOKEN"):
    LTIGATE_SCORE_API_TOKEN = os.environ["LTIGATE_SCORE_API_TOKEN"]
if "LTIGATE_ENROLLMENT_MODE" in os.environ:
    LTIGATE_ENROLLMENT_MODE = os.environ["LTIGATE_ENROLLMENT_MODE"]

CELERY_TASK_EAGER_PROPAGATES = False
CELERY_BROKER_URL = "memory://"
CELERY_TASK_IGNORE_RESULT = True
