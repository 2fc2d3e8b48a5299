"""Plain-Django settings for the tests: in-memory SQLite, the fake platform."""

SECRET_KEY = "ltigate-openedx-tests"
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["testserver", "lms.test"]
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.messages",
    "django.contrib.sessions",
    "ltigate_openedx",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "ltigate_openedx.middleware.LtigateAssertionMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
ROOT_URLCONF = "tests.urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Like the LMS: no plain ModelBackend, but a subclass of it.
AUTHENTICATION_BACKENDS = ["tests.backends.NoUsersBackend", "tests.backends.LmsLikeModelBackend"]

LTIGATE_PLATFORM = "fake"
LTIGATE_ISSUER = "http://gateway.test/"
# LTIGATE_JWKS_URL and LTIGATE_SCORE_API_URL point at a local server per test.
LTIGATE_SCORE_API_TOKEN = "test-score-api-token"
LTIGATE_SCORE_API_TIMEOUT = 2
LTIGATE_JWKS_TIMEOUT = 2
