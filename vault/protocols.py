"""The protocol matrix: which protocols each record type takes and what each can record.

This module is the one statement of the matrix; model validation, the admin
forms and the API serializers all ask it.
"""

from dataclasses import dataclass

from .choices import Protocol, RecordType

PROTOCOLS_BY_RECORD_TYPE: dict[str, tuple[str, ...]] = {
    RecordType.MACHINE: (Protocol.SSH, Protocol.RDP, Protocol.VNC, Protocol.TELNET),
    RecordType.DATABASE: (Protocol.MYSQL, Protocol.POSTGRESQL, Protocol.SQL_SERVER),
    RecordType.DIRECTORY: (Protocol.SSH, Protocol.RDP),
    RecordType.REMOTE_BROWSING: (Protocol.RBI,),
}

DEFAULT_PORTS: dict[str, int] = {
    Protocol.SSH: 22,
    Protocol.RDP: 3389,
    Protocol.VNC: 5900,
    Protocol.TELNET: 23,
    Protocol.MYSQL: 3306,
    Protocol.POSTGRESQL: 5432,
    Protocol.SQL_SERVER: 1433,
}

# Protocols whose sessions are a terminal: only these can be recorded as text.
TEXT_RECORDING_PROTOCOLS: frozenset[str] = frozenset(
    {Protocol.SSH, Protocol.TELNET, Protocol.MYSQL, Protocol.POSTGRESQL, Protocol.SQL_SERVER}
)
# Every protocol goes through guacd and can be recorded graphically.
GRAPHICAL_RECORDING_PROTOCOLS: frozenset[str] = frozenset(Protocol.values)


def protocol_allowed(record_type: str, protocol: str) -> bool:
    """Whether a record of ``record_type`` may use ``protocol``."""
    return protocol in PROTOCOLS_BY_RECORD_TYPE.get(record_type, ())


def supports_text_recording(protocol: str) -> bool:
    """Whether sessions over ``protocol`` can be recorded as typescripts."""
    return protocol in TEXT_RECORDING_PROTOCOLS


def supports_graphical_recording(protocol: str) -> bool:
    """Whether sessions over ``protocol`` can be recorded graphically."""
    return protocol in GRAPHICAL_RECORDING_PROTOCOLS


def text_recording_unavailable_reason(protocol: str) -> str:
    """The explanation shown where text recording cannot be switched on."""
    label = Protocol(protocol).label if protocol in Protocol.values else protocol
    return (
        f"{label} sessions are graphical: they can be recorded graphically, "
        "but there is no terminal text to record as a typescript."
    )


@dataclass(frozen=True)
class EffectiveRecording:
    """What will actually be recorded for a record's sessions, and why not when not."""

    graphical: bool
    text: bool
    graphical_reason: str
    text_reason: str


def effective_recording(
    *,
    protocol: str,
    configuration_allows_graphical: bool,
    configuration_allows_text: bool,
    record_enables_graphical: bool,
    record_enables_text: bool,
) -> EffectiveRecording:
    """Effective recording = configuration allows ∧ record enables ∧ protocol supports."""

    def decide(supported: bool, allowed: bool, enabled: bool, kind: str) -> tuple[bool, str]:
        if not supported:
            return False, f"The protocol does not support {kind} recording."
        if not allowed:
            return False, f"The PAM configuration does not allow {kind} recording."
        if not enabled:
            return False, f"{kind.capitalize()} recording is switched off on this record."
        return True, f"{kind.capitalize()} recording is on."

    graphical, graphical_reason = decide(
        supports_graphical_recording(protocol),
        configuration_allows_graphical,
        record_enables_graphical,
        "graphical",
    )
    text, text_reason = decide(
        supports_text_recording(protocol), configuration_allows_text, record_enables_text, "text"
    )
    return EffectiveRecording(graphical, text, graphical_reason, text_reason)
