"""Fixtures shared by the whole suite."""

from pathlib import Path

import pytest
from rest_framework.test import APIClient

from keeperpam.celery import app as celery_app
from tests.keyring import fast_passwords  # noqa: F401  (fixture, for every test module)


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def eager_celery():
    """Run tasks in-process even when CELERY_BROKER_URL is set (the non-integration runs)."""
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = before


@pytest.fixture
def data_dirs(settings, tmp_path) -> Path:
    """Staging, part storage and the signer key under tmp_path (tests search them)."""
    settings.STAGING_DIR = tmp_path / "staging"
    settings.KEEPERPAM_SIGNER_KEY_FILE = tmp_path / "keys" / "signer.pem"
    # Django's setting_changed handler resets default_storage for the new STORAGES.
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": tmp_path / "storage"}}}
    return tmp_path
