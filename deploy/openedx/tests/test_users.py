"""Creating and updating the account an assertion names."""

import pytest
from django.contrib.auth import get_user_model

from ltigate_openedx import users
from ltigate_openedx.models import LtigateUser

from .conftest import ALICE, BOB, claims_for

pytestmark = pytest.mark.django_db
User = get_user_model()


def test_a_new_user_is_created_marked_with_an_unusable_password(fake):
    user = users.get_or_create_user(claims_for())
    assert user.username == ALICE
    assert user.email == f"{ALICE}@example.edu"
    assert (user.first_name, user.last_name) == ("Alice", "Example")
    assert user.is_active and not user.has_usable_password()
    assert not user.is_staff and not user.is_superuser
    assert LtigateUser.objects.filter(user=user).exists()
    assert fake.profiles[user.pk] == "Alice Example"


def test_without_pii_the_email_is_synthesised_and_the_name_is_the_username(fake):
    user = users.get_or_create_user(
        claims_for(email=None, name=None, given_name=None, family_name=None)
    )
    assert user.email == f"{ALICE}@ltigate.invalid"
    assert (user.first_name, user.last_name) == ("", "")
    assert fake.profiles[user.pk] == ALICE


def test_the_profile_name_falls_back_to_given_and_family_names(fake):
    user = users.get_or_create_user(claims_for(name=None, given_name="Ada", family_name="Lovelace"))
    assert fake.profiles[user.pk] == "Ada Lovelace"


def test_the_same_sub_gets_the_same_user():
    first = users.get_or_create_user(claims_for())
    again = users.get_or_create_user(claims_for())
    assert first.pk == again.pk
    assert User.objects.count() == 1


def test_changed_email_and_names_are_updated(fake):
    user = users.get_or_create_user(claims_for())
    users.get_or_create_user(
        claims_for(email="alice@new.example", name="Alice B. Example", given_name="Alice B.", family_name="Sample")
    )
    user.refresh_from_db()
    assert user.email == "alice@new.example"
    assert (user.first_name, user.last_name) == ("Alice B.", "Sample")
    assert fake.profiles[user.pk] == "Alice B. Example"


def test_absent_claims_change_nothing(fake):
    user = users.get_or_create_user(claims_for())
    users.get_or_create_user(claims_for(email=None, name=None, given_name=None, family_name=None))
    user.refresh_from_db()
    assert user.email == f"{ALICE}@example.edu"
    assert (user.first_name, user.last_name) == ("Alice", "Example")
    assert fake.profiles[user.pk] == "Alice Example"


def test_an_email_used_by_another_account_is_not_taken():
    User.objects.create_user("someone", email="shared@example.edu")
    user = users.get_or_create_user(claims_for(email="shared@example.edu"))
    assert user.email == f"{ALICE}@ltigate.invalid"
    bob = users.get_or_create_user(claims_for(BOB, email="bob@example.edu"))
    users.get_or_create_user(claims_for(BOB, email="SHARED@example.edu"))
    bob.refresh_from_db()
    assert bob.email == "bob@example.edu"


def test_an_invalid_email_is_ignored():
    user = users.get_or_create_user(claims_for(email="not an email"))
    assert user.email == f"{ALICE}@ltigate.invalid"


def test_an_account_ltigate_did_not_create_is_refused():
    User.objects.create_user(ALICE, email="x@example.edu", password="secret")
    with pytest.raises(users.UserRefused):
        users.get_or_create_user(claims_for())


def test_a_deactivated_account_is_refused():
    user = users.get_or_create_user(claims_for())
    user.is_active = False
    user.save()
    with pytest.raises(users.UserRefused):
        users.get_or_create_user(claims_for())


def test_long_names_are_truncated(fake):
    user = users.get_or_create_user(claims_for(name="N" * 400, given_name="G" * 200, family_name="F" * 200))
    assert len(user.first_name) == 150 and len(user.last_name) == 150
    assert len(fake.profiles[user.pk]) == 255


def test_an_account_of_the_name_linked_to_another_gateway_username_is_refused():
    other = User.objects.create_user(ALICE)
    LtigateUser.objects.create(user=other, username=BOB)
    with pytest.raises(users.UserRefused, match="not created by ltigate"):
        users.get_or_create_user(claims_for())
    # Bob's gateway username names that account.
    assert users.get_or_create_user(claims_for(BOB)).pk == other.pk


def test_the_gateway_username_is_recorded():
    user = users.get_or_create_user(claims_for())
    assert LtigateUser.objects.get(user=user).username == ALICE
