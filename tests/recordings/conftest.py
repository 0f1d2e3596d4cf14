"""Fixtures of the ingest tests: isolated data dirs, a gateway, a recorded record."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.files.storage import default_storage

from keeperpam.crypto import keys as crypto_keys
from keeperpam.crypto.parts import stream_open
from recordings import services
from recordings.models import Gateway, SignerKey, Stream
from tests.factories import PamConfigurationFactory, RecordFactory, UserFactory
from tests.keyring import ClientKey, enrol, fast_passwords, share, viewer_role  # noqa: F401
from tests.paths import FIXTURES as FIXTURES  # re-exported for the test modules


@dataclass
class Setup:
    gateway: Gateway
    token: str
    record: object
    viewer: object
    viewer_key: ClientKey


@pytest.fixture
def ingest(request, transactional_db, data_dirs, eager_celery) -> Setup:
    request.getfixturevalue("fast_passwords")
    configuration = PamConfigurationFactory()
    record = RecordFactory(configuration=configuration, graphical_recording=True,
                           text_recording=True)
    viewer = UserFactory()
    viewer_role(viewer)
    share(record, viewer)
    viewer_key = enrol(viewer)
    gateway = services.gateway_create(name="gw-test", configurations=[configuration],
                                      acting_user=None)
    _, token = services.gateway_credential_issue(gateway=gateway, acting_user=None)
    return Setup(gateway, token, record, viewer, viewer_key)


def record_private_key(setup: Setup, recording) -> ec.EllipticCurvePrivateKey:
    record_key = recording.record_key
    share_row = record_key.shares.get(user=setup.viewer)
    return setup.viewer_key.open_share(share_row.share, record_key.key_id)


def signers() -> dict:
    return {s.key_id: crypto_keys.signer_public_key_load(crypto_keys.b64u_decode(s.public_key))
            for s in SignerKey.objects.all()}


def stream_parts(stream: Stream) -> list[bytes]:
    out = []
    for part in stream.parts.order_by("seq"):
        with default_storage.open(part.storage_name, "rb") as handle:
            out.append(handle.read())
    return out


def open_stream(setup: Setup, stream: Stream):
    return list(stream_open(stream_parts(stream),
                            record_private_key=record_private_key(setup, stream.recording),
                            signers=signers(), recording=str(stream.recording_id),
                            stream=stream.kind))
