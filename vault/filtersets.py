"""django-filter FilterSets of the vault API.

Foreign keys are filtered by number rather than by ``ModelChoiceFilter``: a
choice filter would validate the id against every row of the table, costing a
query and telling the caller whether an object it may not see exists.
"""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from .access import rules
from .choices import Protocol, RecordType
from .models import PamConfiguration, Record, SharedFolder


@extend_schema_field(OpenApiTypes.INT)
class IdFilter(django_filters.NumberFilter):
    """An object id (integers only, documented as such in the schema)."""


class RecordFilterSet(django_filters.FilterSet):
    """Filters of ``/api/v1/records/``."""

    record_type = django_filters.ChoiceFilter(choices=RecordType.choices)
    protocol = django_filters.ChoiceFilter(choices=Protocol.choices)
    configuration = IdFilter(field_name="configuration_id")
    folder = IdFilter(field_name="folder_id")
    in_folder = django_filters.BooleanFilter(
        field_name="folder", lookup_expr="isnull", exclude=True,
        label="Only records in a shared folder (true) or outside any folder (false).",
    )
    graphical_recording = django_filters.BooleanFilter()
    text_recording = django_filters.BooleanFilter()
    can_view_recordings = django_filters.BooleanFilter(
        method="filter_can_view_recordings",
        label="Only records whose session recordings the caller may view (true), or the "
        "others (false).",
    )

    class Meta:
        model = Record
        fields = [
            "record_type",
            "protocol",
            "configuration",
            "folder",
            "in_folder",
            "graphical_recording",
            "text_recording",
            "can_view_recordings",
        ]

    def filter_can_view_recordings(
        self, queryset: QuerySet[Record], name: str, value: bool
    ) -> QuerySet[Record]:
        if value is None:
            return queryset
        viewable = rules().records_with_viewable_recordings(self.request.user).values("pk")
        if value:
            return queryset.filter(pk__in=viewable)
        return queryset.exclude(pk__in=viewable)


class PamConfigurationFilterSet(django_filters.FilterSet):
    """Filters of ``/api/v1/configurations/``."""

    environment = django_filters.ChoiceFilter(choices=PamConfiguration.Environment.choices)

    class Meta:
        model = PamConfiguration
        fields = [
            "environment",
            "connections_enabled",
            "tunneling_enabled",
            "allow_graphical_recording",
            "allow_text_recording",
        ]


class SharedFolderFilterSet(django_filters.FilterSet):
    """Filters of ``/api/v1/folders/``."""

    can_manage = django_filters.BooleanFilter(
        label="Only folders the caller may change (true), or the others (false)."
    )

    class Meta:
        model = SharedFolder
        fields = ["can_manage"]
