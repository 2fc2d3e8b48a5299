"""``./manage.py lms ltigate_seed_report``: how many of the seed plugin's
learners a switch to ltigate keeps.

A seed learner is kept when its profile names an existing, active LMS user:
the first launch through ltigate from the same LTI source (issuer,
client_id, sub) links that user to the gateway username (see ``seed.py``).
Read-only; the seed app need not be installed, only its table present.
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import DEFAULT_DB_ALIAS, connections

from ltigate_openedx import seed
from ltigate_openedx.models import LtigateUser


def seed_counts(using=DEFAULT_DB_ALIAS):
    """Rows of (platform_id, client_id, profiles, with an active user, linked),
    or None when the seed's table does not exist."""
    seed.forget()
    if not seed.table_present(using):
        return None
    connection = connections[using]
    q = connection.ops.quote_name
    user_meta = get_user_model()._meta
    linked_meta = LtigateUser._meta
    sql = (
        f"SELECT p.{q('platform_id')}, p.{q('client_id')}, COUNT(*), "
        f"SUM(CASE WHEN u.{q(user_meta.pk.column)} IS NOT NULL AND u.{q('is_active')} THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN l.{q(linked_meta.pk.column)} IS NOT NULL THEN 1 ELSE 0 END) "
        f"FROM {q(seed.SEED_TABLE)} p "
        f"LEFT JOIN {q(user_meta.db_table)} u ON u.{q(user_meta.pk.column)} = p.{q('user_id')} "
        f"LEFT JOIN {q(linked_meta.db_table)} l ON l.{q(linked_meta.pk.column)} = p.{q('user_id')} "
        f"GROUP BY p.{q('platform_id')}, p.{q('client_id')} "
        f"ORDER BY p.{q('platform_id')}, p.{q('client_id')}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return [(platform_id, client_id, int(n), int(active or 0), int(linked or 0))
                for platform_id, client_id, n, active, linked in cursor.fetchall()]


class Command(BaseCommand):
    help = "Counts the seed LTI plugin's learners that keep their accounts when ltigate takes over."

    def add_arguments(self, parser):
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)

    def handle(self, *args, **options):
        rows = seed_counts(options["database"])
        if rows is None:
            self.stdout.write(f"No seed table ({seed.SEED_TABLE}): there are no seed learners to keep.")
            return
        total = sum(r[2] for r in rows)
        active = sum(r[3] for r in rows)
        linked = sum(r[4] for r in rows)
        self.stdout.write(f"seed profiles: {total}")
        self.stdout.write(f"with an existing active user (kept): {active}")
        self.stdout.write(f"already linked to a gateway username: {linked}")
        self.stdout.write(f"without a usable user (not kept): {total - active}")
        if rows:
            self.stdout.write("per platform_id, client_id: profiles, kept, linked")
            for platform_id, client_id, n, kept, done in rows:
                self.stdout.write(f"  {platform_id}  {client_id}: {n}, {kept}, {done}")
