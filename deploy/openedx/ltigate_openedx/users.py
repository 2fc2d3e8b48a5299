"""Getting, creating and updating the LMS account an assertion names."""

import logging

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from . import conf, platform
from .models import LtigateUser

log = logging.getLogger(__name__)

# Django's limits on auth_user; UserProfile.name allows 255.
FIRST_NAME_MAX = 150
LAST_NAME_MAX = 150
EMAIL_MAX = 254
PROFILE_NAME_MAX = 255


class UserRefused(Exception):
    """The assertion's user may not be logged in. The message is safe to log."""


def _text(claims, name):
    value = claims.get(name)
    return value.strip() if isinstance(value, str) and value.strip() else None


def profile_name(claims):
    """The full name the claims give, or None."""
    name = _text(claims, "name")
    if name is None:
        parts = [p for p in (_text(claims, "given_name"), _text(claims, "family_name")) if p]
        name = " ".join(parts) or None
    return name[:PROFILE_NAME_MAX] if name else None


def _claimed_email(claims):
    email = _text(claims, "email")
    if email is None or len(email) > EMAIL_MAX:
        return None
    try:
        validate_email(email)
    except ValidationError:
        return None
    return email


def _email_taken(email, user_id=None):
    others = get_user_model().objects.filter(email__iexact=email)
    if user_id is not None:
        others = others.exclude(pk=user_id)
    return others.exists()


def get_or_create_user(claims):
    """The active, ltigate-created user named by ``claims["sub"]``.

    Creates it on first sight (unusable password, a profile through the
    platform seam) and updates its email and names when the claims carry
    new ones. Raises UserRefused for an account ltigate did not create or
    one that has been deactivated.
    """
    username = claims["sub"]
    User = get_user_model()
    user = User.objects.filter(username=username).first()
    if user is None:
        try:
            user = _create(username, claims)
        except IntegrityError:
            # A concurrent request created it first.
            user = User.objects.filter(username=username).first()
            if user is None:
                raise
        else:
            return user
    if not LtigateUser.objects.filter(user_id=user.pk).exists():
        raise UserRefused("an account of this name exists and was not created by ltigate")
    if not user.is_active:
        raise UserRefused("the account is deactivated")
    update_user(user, claims)
    return user


def _create(username, claims):
    User = get_user_model()
    email = _claimed_email(claims)
    if email is None or _email_taken(email):
        email = f"{username}@{conf.get('LTIGATE_USER_EMAIL_DOMAIN')}"
    with transaction.atomic():
        user = User(
            username=username,
            email=email,
            first_name=(_text(claims, "given_name") or "")[:FIRST_NAME_MAX],
            last_name=(_text(claims, "family_name") or "")[:LAST_NAME_MAX],
            is_active=True,
        )
        user.set_unusable_password()
        user.save()
        LtigateUser.objects.create(user=user)
        platform.get().create_profile(user, profile_name(claims) or username)
    log.info("ltigate: created user %s", username)
    return user


def update_user(user, claims):
    """Applies changed email and names from the claims; absent claims change nothing."""
    changed = []
    email = _claimed_email(claims)
    if email is not None and email != user.email:
        if _email_taken(email, user.pk):
            log.warning("ltigate: email of %s not updated: another account uses it", user.username)
        else:
            user.email = email
            changed.append("email")
    given = _text(claims, "given_name")
    if given is not None and given[:FIRST_NAME_MAX] != user.first_name:
        user.first_name = given[:FIRST_NAME_MAX]
        changed.append("first_name")
    family = _text(claims, "family_name")
    if family is not None and family[:LAST_NAME_MAX] != user.last_name:
        user.last_name = family[:LAST_NAME_MAX]
        changed.append("last_name")
    if changed:
        user.save(update_fields=changed)
    name = profile_name(claims)
    if name is not None:
        platform.get().update_profile_name(user, name)
    return changed
