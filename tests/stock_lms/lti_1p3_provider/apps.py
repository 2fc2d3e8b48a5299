from django.apps import AppConfig


class Lti1p3ProviderConfig(AppConfig):
    """The seed plugin's app (``lti_1p3_provider``), for its accounts only."""

    name = "lti_1p3_provider"
    label = "lti_1p3_provider"
    default_auto_field = "django.db.models.AutoField"
