"""The protocol matrix at the model level, where every writer's validation starts."""

import itertools

import pytest
from django.core.exceptions import ValidationError

from tests.factories import PamConfigurationFactory, RecordFactory
from vault import protocols
from vault.choices import Protocol, RecordType
from vault.models import Record

pytestmark = pytest.mark.django_db

FORBIDDEN_PAIRS = [
    (record_type, protocol)
    for record_type, protocol in itertools.product(RecordType.values, Protocol.values)
    if protocol not in protocols.PROTOCOLS_BY_RECORD_TYPE[record_type]
]
GRAPHICAL_ONLY = [Protocol.RDP, Protocol.VNC, Protocol.RBI]


def build(record_type: str, protocol: str, **fields) -> Record:
    return RecordFactory.build(
        record_type=record_type,
        protocol=protocol,
        configuration=PamConfigurationFactory(),
        **fields,
    )


@pytest.mark.parametrize(("record_type", "protocol"), FORBIDDEN_PAIRS)
def test_a_record_type_refuses_protocols_outside_its_list(record_type, protocol):
    with pytest.raises(ValidationError) as error:
        build(record_type, protocol, host="h.internal", url="https://h.example.test/").full_clean()
    message = error.value.message_dict["protocol"][0]
    assert RecordType(record_type).label in message
    assert Protocol(protocol).label in message


@pytest.mark.parametrize("protocol", GRAPHICAL_ONLY)
def test_text_recording_cannot_be_switched_on_for_graphical_protocols(protocol):
    record_type = RecordType.REMOTE_BROWSING if protocol == Protocol.RBI else RecordType.MACHINE
    record = build(record_type, protocol, text_recording=True)
    with pytest.raises(ValidationError) as error:
        record.full_clean()
    assert "no terminal text" in error.value.message_dict["text_recording"][0]


@pytest.mark.parametrize(
    ("record_type", "protocol"),
    [(t, p) for t, ps in protocols.PROTOCOLS_BY_RECORD_TYPE.items() for p in ps],
)
def test_every_allowed_pair_validates(record_type, protocol):
    build(record_type, protocol, text_recording=protocols.supports_text_recording(protocol),
          graphical_recording=True).full_clean()


def test_remote_browsing_needs_a_url_and_others_a_host():
    with pytest.raises(ValidationError) as error:
        build(RecordType.REMOTE_BROWSING, Protocol.RBI, url="").full_clean()
    assert "url" in error.value.message_dict
    with pytest.raises(ValidationError) as error:
        build(RecordType.MACHINE, Protocol.SSH, host="").full_clean()
    assert "host" in error.value.message_dict


@pytest.mark.parametrize(
    ("allows", "enables", "protocol", "expected_text"),
    [
        (allows, enables, protocol, allows and enables and protocol != Protocol.RDP)
        for allows, enables, protocol in itertools.product(
            [False, True], [False, True], [Protocol.SSH, Protocol.RDP]
        )
    ],
)
def test_effective_text_recording_is_the_conjunction(allows, enables, protocol, expected_text):
    effective = protocols.effective_recording(
        protocol=protocol,
        configuration_allows_graphical=True,
        configuration_allows_text=allows,
        record_enables_graphical=True,
        record_enables_text=enables,
    )
    assert effective.text is expected_text
    assert effective.graphical is True
    assert effective.text_reason
