"""The recordings rule end to end through services: policy ∧ access, no superuser exception."""

import pytest

from policies import selectors
from policies.services import role_create, role_update
from tests.factories import RecordFactory, UserFactory
from vault import services
from vault.choices import AccessLevel, RecordType

pytestmark = pytest.mark.django_db


def test_view_needs_policy_and_access_and_revocation_is_immediate():
    auditor = UserFactory()
    record = RecordFactory(record_type=RecordType.MACHINE)
    assert not selectors.may_view_recordings(auditor, record)

    role = role_create(acting_user=None, name="Auditors", can_view_recordings=True,
                       users=[auditor])
    assert not selectors.may_view_recordings(auditor, record)  # policy, no access

    share = services.record_share_grant(record=record, user=auditor, access=AccessLevel.VIEW,
                                        acting_user=None)
    assert selectors.may_view_recordings(auditor, record)
    assert list(selectors.records_with_viewable_recordings(auditor)) == [record]

    role_update(role=role, acting_user=None, users=[])
    assert not selectors.may_view_recordings(auditor, record)
    role_update(role=role, acting_user=None, users=[auditor])
    services.record_share_revoke(share=share, acting_user=None)
    assert not selectors.may_view_recordings(auditor, record)


def test_superuser_has_no_recording_exception():
    boss = UserFactory(is_superuser=True, is_staff=True)
    record = RecordFactory()
    role_create(acting_user=None, name="All", can_view_recordings=True, users=[boss])
    assert selectors.may_configure_record(boss, record)
    assert not selectors.may_view_recordings(boss, record)
