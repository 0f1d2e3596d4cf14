"""Forms of the admin console.

The record form does not restate the protocol matrix: it asks
:mod:`vault.protocols` what to offer and leaves refusing forbidden
combinations to :meth:`vault.models.Record.clean`, whose errors a ModelForm
attaches to the offending field.
"""

from __future__ import annotations

import json
from functools import partial

from django import forms

from . import protocols
from .choices import Protocol, RecordType
from .models import Record


def _protocols_help() -> str:
    """One line per record type naming the protocols it takes."""
    return "; ".join(
        f"{RecordType(record_type).label}: "
        + ", ".join(Protocol(p).label for p in allowed)
        for record_type, allowed in protocols.PROTOCOLS_BY_RECORD_TYPE.items()
    ) + "."


TEXT_RECORDING_HELP = (
    "Record terminal sessions as text (typescript with timing). Only terminal protocols "
    "can: "
    + ", ".join(
        Protocol(p).label for p in Protocol.values if protocols.supports_text_recording(p)
    )
    + "."
)


class RecordAdminForm(forms.ModelForm):
    """A record's connection and PAM settings, limited to what the editor may configure.

    The admin sets ``configurable_record_types`` on the class it builds per
    request (see ``RecordAdmin.get_form``), so the type select offers only the
    types the editing user's policies cover.
    """

    configurable_record_types: tuple[str, ...] | None = None

    class Meta:
        model = Record
        # The admin narrows these to its fieldsets; listed so nothing slips in unseen.
        fields = [
            "name", "record_type", "protocol", "folder", "notes", "host", "port", "url",
            "configuration", "graphical_recording", "text_recording",
        ]
        # Remote-browsing targets are web apps: a bare host means https.
        field_classes = {"url": partial(forms.URLField, assume_scheme="https")}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The form of a read-only change page has no fields at all.
        if "record_type" in self.fields and self.configurable_record_types is not None:
            field = self.fields["record_type"]
            field.choices = [
                (value, label)
                for value, label in field.choices
                if value == "" or value in self.configurable_record_types
            ]
        if "protocol" in self.fields:
            self.fields["protocol"].help_text = _protocols_help()
        if "text_recording" in self.fields:
            self._set_up_text_recording(self.fields["text_recording"])

    def _current_protocol(self) -> str:
        """The protocol the page shows: the one just submitted, else the record's."""
        if self.is_bound and "protocol" in self.fields:
            return self.data.get(self.add_prefix("protocol"), "") or ""
        return self.instance.protocol or ""

    def _set_up_text_recording(self, field: forms.Field) -> None:
        """Disable the text toggle where the protocol has no terminal, and say why.

        The ``disabled`` attribute only shapes the page (and lets the small
        admin script re-enable the toggle when the protocol select changes);
        a forged submission is still refused by ``Record.clean()``.
        """
        reasons = {
            p: protocols.text_recording_unavailable_reason(p)
            for p in Protocol.values
            if not protocols.supports_text_recording(p)
        }
        field.help_text = TEXT_RECORDING_HELP
        field.widget.attrs.update(
            {
                "data-text-unavailable-reasons": json.dumps(reasons),
                "data-help-default": TEXT_RECORDING_HELP,
            }
        )
        protocol = self._current_protocol()
        if protocol in reasons:
            field.widget.attrs["disabled"] = True
            field.help_text = reasons[protocol]
