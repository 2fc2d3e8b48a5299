"""The Django app, registered as an Open edX plugin app (``lms.djangoapp``)."""

from django.apps import AppConfig


class LtigateOpenedxConfig(AppConfig):
    """ltigate's LMS plugin.

    ``plugin_app`` is read by edx-django-utils: it includes ``urls`` under
    ``/ltigate/`` and runs ``settings.common.plugin_settings`` while the LMS
    settings load (which adds the middleware). Plain strings are used rather
    than the edx-django-utils constants so this module imports only Django.
    """

    name = "ltigate_openedx"
    label = "ltigate_openedx"
    verbose_name = "ltigate (LTI gateway) integration"
    default_auto_field = "django.db.models.AutoField"

    plugin_app = {
        "url_config": {
            "lms.djangoapp": {
                "namespace": "ltigate_openedx",
                "regex": r"^ltigate/",
                "relative_path": "urls",
            },
        },
        "settings_config": {
            "lms.djangoapp": {
                "common": {"relative_path": "settings.common"},
            },
        },
    }

    def ready(self):
        # Registers the Celery task, and connects the score hook to
        # PROBLEM_WEIGHTED_SCORE_CHANGED (taken from the platform seam).
        from . import platform, scores, tasks  # noqa: F401  pylint: disable=import-outside-toplevel

        platform.get().problem_weighted_score_changed().connect(
            scores.on_problem_weighted_score_changed,
            dispatch_uid="ltigate_openedx.scores.on_problem_weighted_score_changed",
        )
