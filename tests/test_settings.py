"""keeperpam/settings.py: the embedded default, the switches, and production's refusals.

Settings are read once per process, so each case runs Django in a subprocess
with exactly the environment under test.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Variables that would leak the outer run's configuration (CI runs the suite on PostgreSQL).
SETTINGS_VARIABLES = (
    "DJANGO_ALLOW_ASYNC_UNSAFE",
    "DATABASE_URL",
    "DATABASE_TEST_NAME",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "KEEPERPAM_PRODUCTION",
    "KEEPERPAM_DATA_DIR",
    "KEEPERPAM_STAGING_DIR",
    "DJANGO_SECRET_KEY",
    "DJANGO_ALLOWED_HOSTS",
    "DJANGO_DEBUG",
    "STORAGE_BACKEND",
)

PRINT_SETTINGS = """
import json, django
from django.conf import settings
django.setup()
db = settings.DATABASES["default"]
print(json.dumps({
    "engine": db["ENGINE"],
    "name": str(db["NAME"]),
    "host": db.get("HOST", ""),
    "data_dir": str(settings.DATA_DIR),
    "eager": settings.CELERY_TASK_ALWAYS_EAGER,
    "broker": settings.CELERY_BROKER_URL,
    "debug": settings.DEBUG,
    "storage": settings.STORAGES["default"]["BACKEND"],
}))
"""


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with the project settings and only ``env`` set."""
    environ = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES}
    environ["DJANGO_SETTINGS_MODULE"] = "keeperpam.settings"
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def settings_with(**env: str) -> dict:
    result = run_python(PRINT_SETTINGS, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def production_env(**extra: str) -> dict[str, str]:
    return {
        "KEEPERPAM_PRODUCTION": "1",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "vault.example.com",
        **extra,
    }


def test_embedded_default_is_sqlite_under_var_and_eager_celery():
    values = settings_with()

    assert values["engine"] == "django.db.backends.sqlite3"
    assert Path(values["name"]) == ROOT / "var" / "db.sqlite3"
    assert Path(values["data_dir"]) == ROOT / "var"
    assert values["eager"] is True
    assert values["broker"] == ""
    assert values["storage"] == "django.core.files.storage.FileSystemStorage"
    assert values["debug"] is True


def test_data_dir_moves_the_database(tmp_path):
    values = settings_with(KEEPERPAM_DATA_DIR=str(tmp_path))

    assert Path(values["name"]) == tmp_path / "db.sqlite3"


def test_database_url_switches_to_postgresql():
    values = settings_with(DATABASE_URL="postgres://vault@db.example.com:5432/keeperpam")

    assert values["engine"] == "django.db.backends.postgresql"
    assert values["name"] == "keeperpam"
    assert values["host"] == "db.example.com"


def test_broker_url_turns_off_eager_mode():
    values = settings_with(CELERY_BROKER_URL="redis://127.0.0.1:6379/0")

    assert values["eager"] is False
    assert values["broker"] == "redis://127.0.0.1:6379/0"


def test_s3_storage_is_configured_through_django_storages(tmp_path):
    code = (
        "import django; django.setup()\n"
        "from django.core.files.storage import default_storage as s\n"
        "print(type(s._wrapped).__name__ if hasattr(s, '_wrapped') and s._wrapped else '',"
        " s.bucket_name, s.endpoint_url)"
    )
    result = run_python(
        code,
        KEEPERPAM_DATA_DIR=str(tmp_path),
        STORAGE_BACKEND="s3",
        STORAGE_S3_BUCKET="recordings",
        STORAGE_S3_ENDPOINT_URL="http://127.0.0.1:9000",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["recordings", "http://127.0.0.1:9000"]


def test_production_refuses_to_start_without_a_secret_key():
    env = production_env()
    del env["DJANGO_SECRET_KEY"]

    result = run_python(PRINT_SETTINGS, **env)

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


def test_production_turns_debug_off():
    assert settings_with(**production_env())["debug"] is False


def test_check_deploy_passes_in_production_mode(tmp_path):
    environ = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES}
    environ.update(production_env(KEEPERPAM_DATA_DIR=str(tmp_path)))

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_flags_the_development_defaults(tmp_path):
    """Without production mode the deploy check must complain: it is not a rubber stamp."""
    environ = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES}
    environ["KEEPERPAM_DATA_DIR"] = str(tmp_path)

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode != 0
    assert "security.W" in result.stderr + result.stdout
