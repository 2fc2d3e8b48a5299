"""The migrations: they match the models, and 0002 back-fills usernames."""

import io

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

APP = "ltigate_openedx"


def test_the_models_need_no_new_migration():
    out = io.StringIO()
    call_command("makemigrations", APP, "--check", "--dry-run", stdout=out)


def test_0002_backfills_the_gateway_username_from_the_account():
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes(APP)
    try:
        executor.migrate([(APP, "0001_initial")])
        old = MigrationExecutor(connection).loader.project_state([(APP, "0001_initial")]).apps
        User = old.get_model("auth", "User")
        for name in ("lti_0123456789abcdef01234567", "lti_89abcdef0123456789abcdef"):
            old.get_model(APP, "LtigateUser").objects.create(user=User.objects.create(username=name))
        User.objects.create(username="someone-else")

        executor = MigrationExecutor(connection)
        executor.migrate(latest)
        new = executor.loader.project_state(latest).apps
        rows = new.get_model(APP, "LtigateUser").objects.order_by("username")
        assert [(r.user.username, r.username) for r in rows] == [
            ("lti_0123456789abcdef01234567", "lti_0123456789abcdef01234567"),
            ("lti_89abcdef0123456789abcdef", "lti_89abcdef0123456789abcdef"),
        ]
    finally:
        MigrationExecutor(connection).migrate(latest)
