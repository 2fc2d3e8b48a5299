"""LtigateUser.username: the gateway username, back-filled from the account's
own username (every account ltigate created until now was named by it)."""

from django.conf import settings
from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def backfill(apps, schema_editor):
    LtigateUser = apps.get_model("ltigate_openedx", "LtigateUser")
    User = apps.get_model(settings.AUTH_USER_MODEL)
    LtigateUser.objects.using(schema_editor.connection.alias).update(
        username=Subquery(User.objects.filter(pk=OuterRef("user_id")).values("username")[:1])
    )


class Migration(migrations.Migration):

    dependencies = [
        ("ltigate_openedx", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="ltigateuser",
            name="username",
            field=models.CharField(max_length=150, null=True),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="ltigateuser",
            name="username",
            field=models.CharField(
                help_text="The gateway's username for this learner (the assertion's sub).",
                max_length=150,
                unique=True,
            ),
        ),
    ]
