"""The access rules the vault's own screens ask, supplied by the policies app.

``vault`` sits below ``policies`` (vault ← policies ← recordings), so its admin
and API reach the rules through the ``KEEPERPAM_ACCESS_RULES`` setting
(``policies.selectors``) instead of importing upwards.
"""

from functools import cache
from importlib import import_module
from types import ModuleType

from django.conf import settings


@cache
def rules() -> ModuleType:
    """The module answering ``may_configure_record``, ``records_visible_to`` and the like."""
    return import_module(settings.KEEPERPAM_ACCESS_RULES)
