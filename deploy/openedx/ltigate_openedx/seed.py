"""Reading the seed plugin's learner profiles, so that its learners keep their
accounts when a site switches from it to ltigate.

The seed is the Open edX LTI 1.3 provider plugin
(``iblai/ibl-edx-lti-1p3-provider-app``, formerly under ``ibleducation``):
Django app ``lti_1p3_provider`` (``src/lti_1p3_provider/apps.py``, no
explicit label), model ``LtiProfile`` (``src/lti_1p3_provider/models.py``)
with no ``db_table``, hence Django's default table
``lti_1p3_provider_ltiprofile``. Its columns (migrations ``0001_initial`` and
``0005_ltiprofile_email``): ``id``, ``user_id`` (a nullable one-to-one to the
user), ``platform_id`` (the launch's ``iss``), ``client_id`` (its ``aud``),
``subject_id`` (its ``sub``), ``email``, ``created_at``; unique on
(``platform_id``, ``client_id``, ``subject_id``).

The seed app is never imported: it may be uninstalled after the switch, its
table left behind (or dropped). Whether the table exists is asked once per
process and database; the lookup is one parameterised ``SELECT`` on the
unique key, made only the first time the gateway names a learner.
"""

import logging
import threading

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction

log = logging.getLogger(__name__)

SEED_TABLE = "lti_1p3_provider_ltiprofile"

_present = {}
_lock = threading.Lock()


def table_present(using=DEFAULT_DB_ALIAS):
    """Whether the seed's profile table exists (asked once per process)."""
    with _lock:
        if using not in _present:
            connection = connections[using]
            with connection.cursor() as cursor:
                _present[using] = SEED_TABLE in connection.introspection.table_names(cursor)
        return _present[using]


def forget():
    """Ask again next time whether the table exists (tests, a dropped table)."""
    with _lock:
        _present.clear()


def _source(claims):
    """(issuer, client_id, sub) of the assertion's LTI source, or None."""
    lti = claims.get("lti")
    if not isinstance(lti, dict):
        return None
    values = tuple(lti.get(name) for name in ("issuer", "client_id", "sub"))
    if not all(isinstance(v, str) and v for v in values):
        return None
    return values


def seed_user_id(claims, using=DEFAULT_DB_ALIAS):
    """The id of the user the seed made for the assertion's LTI source, or None."""
    source = _source(claims)
    if source is None or not table_present(using):
        return None
    connection = connections[using]
    quote = connection.ops.quote_name
    sql = (
        f"SELECT {quote('user_id')} FROM {quote(SEED_TABLE)} "
        f"WHERE {quote('platform_id')} = %s AND {quote('client_id')} = %s AND {quote('subject_id')} = %s"
    )
    try:
        # A savepoint: a failed query must not poison an enclosing transaction.
        with transaction.atomic(using=using), connection.cursor() as cursor:
            cursor.execute(sql, list(source))
            row = cursor.fetchone()
    except DatabaseError as exc:
        log.warning("ltigate: reading the seed's %s failed (%s); not using it", SEED_TABLE, exc)
        forget()
        return None
    return row[0] if row else None
