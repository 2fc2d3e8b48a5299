"""Getting, creating and updating the LMS account an assertion names."""

import logging

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from . import conf, platform, seed
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
    """The active LMS account of the gateway learner ``claims["sub"]``.

    In this order:

    1. the account linked to that gateway username (an ``LtigateUser`` row);
    2. the account the seed plugin made for the assertion's LTI source (the
       ``lti`` claim's issuer, client_id and sub), which gets linked: the
       seed's learners keep their accounts (see ``seed.py``);
    3. an account already named ``sub`` that is not linked to it: refused,
       never taken over;
    4. otherwise a new account named ``sub`` (unusable password, a profile
       through the platform seam).

    Email and names are then updated when the claims carry new ones. Raises
    UserRefused for accounts that may not be used (see above), and for
    deactivated ones.
    """
    username = claims["sub"]
    account = LtigateUser.objects.filter(username=username).select_related("user").first()
    if account is not None:
        user = account.user
    else:
        user = _adopt_seed_user(claims)
        if user is None:
            user, created = _create_or_refuse(username, claims)
            if created:
                return user
    if not user.is_active:
        raise UserRefused("the account is deactivated")
    update_user(user, claims)
    return user


def _link(user, username):
    """Links ``user`` to the gateway username; the winner of a race wins."""
    try:
        with transaction.atomic():
            LtigateUser.objects.create(user=user, username=username)
    except IntegrityError:
        pass
    account = LtigateUser.objects.filter(user_id=user.pk).first()
    if account is None or account.username != username:
        raise UserRefused("the account is linked to another gateway learner")


def _adopt_seed_user(claims):
    """The seed's account for this LTI source, now linked, or None."""
    user_id = seed.seed_user_id(claims)
    if user_id is None:
        return None
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        return None
    if not user.is_active:
        raise UserRefused("the seed plugin's account for this learner is deactivated")
    if user.is_staff or user.is_superuser:
        # The seed made learners only; an account raised to staff since is
        # not one the gateway may log in on a platform's word.
        raise UserRefused("the seed plugin's account for this learner is staff")
    existing = LtigateUser.objects.filter(user_id=user.pk).first()
    if existing is not None and existing.username != claims["sub"]:
        raise UserRefused("the seed plugin's account is linked to another gateway learner")
    if existing is None:
        _link(user, claims["sub"])
        log.info("ltigate: linked the seed plugin's user %s to %s", user.get_username(), claims["sub"])
    return user


def _create_or_refuse(username, claims):
    """(user, created): a new account named ``username``, or the one a
    concurrent request just created; UserRefused when the name is taken."""
    User = get_user_model()
    if User.objects.filter(username=username).exists():
        raise UserRefused("an account of this name exists and was not created by ltigate")
    try:
        user = _create(username, claims)
    except IntegrityError:
        # A concurrent request created it (or took the name) first.
        account = LtigateUser.objects.filter(username=username).select_related("user").first()
        if account is None:
            raise UserRefused("an account of this name exists and was not created by ltigate") from None
        return account.user, False
    return user, True


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
        LtigateUser.objects.create(user=user, username=username)
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
