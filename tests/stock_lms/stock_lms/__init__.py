"""The stock-behaviour LMS for ltigate's tests (see ../README.md)."""

import lms  # noqa: F401  (the Celery app, as the real LMS package sets it up)
