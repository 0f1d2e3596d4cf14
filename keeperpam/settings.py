"""Settings, read from environment variables.

With no environment set the vault runs on the embedded default: SQLite, local
file storage and Celery in eager mode, all under ``KEEPERPAM_DATA_DIR``
(``var/`` in the checkout). ``DATABASE_URL``, ``CELERY_BROKER_URL`` and the
``STORAGE_*`` variables move the same code onto PostgreSQL, Redis and
S3-compatible storage. ``KEEPERPAM_PRODUCTION=1`` turns on the hardening that
``manage.py check --deploy`` asks for and refuses to start without a secret key.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured


def env_bool(name: str, default: bool = False) -> bool:
    """Read a boolean environment variable ("1", "true", "yes", "on" are true)."""
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    """Read an integer environment variable."""
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


def env_list(name: str, default: list[str]) -> list[str]:
    """Read a comma-separated environment variable."""
    value = os.environ.get(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("KEEPERPAM_DATA_DIR", BASE_DIR / "var")).resolve()

PRODUCTION = env_bool("KEEPERPAM_PRODUCTION")
DEBUG = env_bool("DJANGO_DEBUG", default=not PRODUCTION)

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY must be set when KEEPERPAM_PRODUCTION is on."
        )
    # Development only: a fixed, obviously insecure key so sessions survive restarts.
    SECRET_KEY = "django-insecure-keeperpam-development-key-do-not-use-in-production-0000"  # noqa: S105

ALLOWED_HOSTS = env_list(
    "DJANGO_ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "[::1]", "testserver"]
)
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "guardian",
    "vault",
    "policies",
    "recordings",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, so it sees the views' exceptions first: a database restart answers 503.
    "keeperpam.middleware.DatabaseUnavailableMiddleware",
]

if PRODUCTION:
    # Static files from gunicorn; runserver and the test live server serve them in development.
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "keeperpam.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "keeperpam.wsgi.application"

if "DATABASE_URL" not in os.environ:
    # The embedded default keeps its SQLite file here: make sure the folder exists.
    DATA_DIR.mkdir(parents=True, exist_ok=True)

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
        # A persistent connection broken by a database restart is replaced at the
        # start of the next request instead of failing it.
        conn_health_checks=True,
    )
}
if os.environ.get("DATABASE_TEST_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": os.environ["DATABASE_TEST_NAME"]}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
# Guardian's anonymous user would let object permissions leak to the public.
ANONYMOUS_USER_NAME = None

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
# npm packages (players, HPKE) are served straight from node_modules.
STATICFILES_DIRS = [("npm", BASE_DIR / "node_modules")]

STORAGE_BACKEND = os.environ.get("STORAGE_BACKEND", "local")
if STORAGE_BACKEND == "s3":
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": os.environ.get("STORAGE_S3_BUCKET", "keeperpam"),
            "endpoint_url": os.environ.get("STORAGE_S3_ENDPOINT_URL") or None,
            "access_key": os.environ.get("STORAGE_S3_ACCESS_KEY"),
            "secret_key": os.environ.get("STORAGE_S3_SECRET_KEY"),
            "region_name": os.environ.get("STORAGE_S3_REGION") or None,
            "file_overwrite": False,
        },
    }
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": DATA_DIR / "storage"},
    }
STORAGES = {
    "default": _default_storage,
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Plaintext from gateways waits here (gateway trust zone) until it is sealed.
STAGING_DIR = Path(os.environ.get("KEEPERPAM_STAGING_DIR", DATA_DIR / "staging")).resolve()
# The sealer's Ed25519 signing key (gateway zone); created 0600 on first use.
KEEPERPAM_SIGNER_KEY_FILE = Path(
    os.environ.get("KEEPERPAM_SIGNER_KEY_FILE", DATA_DIR / "keys" / "signer.pem")
).resolve()

# Celery: eager in the embedded default, a real broker when one is configured.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_TASK_DEFAULT_QUEUE", "keeperpam")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "keeperpam.api.exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "keeperpam API",
    "DESCRIPTION": (
        "Zero-knowledge vault for privileged-session recordings: records, PAM "
        "configurations, sharing, roles and enforcement policies, keys, gateway ingest "
        "and playback."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
}

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"
    X_FRAME_OPTIONS = "DENY"

# vault asks these rules without importing upwards (see vault/access.py).
KEEPERPAM_ACCESS_RULES = "policies.selectors"

# Gateway ingest (recordings): a session whose gateway sent nothing for this many
# seconds is sealed as incomplete by Celery beat; tus PATCH bodies are capped per
# request (the total is unlimited).
KEEPERPAM_SESSION_IDLE_TIMEOUT = env_int("KEEPERPAM_SESSION_IDLE_TIMEOUT", 3600)
KEEPERPAM_UPLOAD_CHUNK_MAX_BYTES = env_int("KEEPERPAM_UPLOAD_CHUNK_MAX_BYTES", 64 << 20)
# A task whose worker died unacknowledged is redelivered after this many seconds (Redis).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("KEEPERPAM_CELERY_VISIBILITY_TIMEOUT", 3600)
}
CELERY_BEAT_SCHEDULE = {
    "recordings-reap-idle-sessions": {
        "task": "recordings.tasks.sessions_reap_idle",
        "schedule": env_int("KEEPERPAM_SESSION_REAP_INTERVAL", 60),
    },
    # Seals the pending part of terminals gone quiet once it is 10 s old, so live
    # watchers see output within seconds rather than at the next output or the close.
    "recordings-flush-quiet-streams": {
        "task": "recordings.tasks.streams_flush_quiet",
        "schedule": env_int("KEEPERPAM_STREAM_FLUSH_INTERVAL", 5),
    },
    # Services reconcile key shares as access changes; this catches what changed
    # outside them (group membership edited in Django's user admin, say).
    "vault-reconcile-key-shares": {
        "task": "vault.tasks.key_shares_reconcile_all",
        "schedule": env_int("KEEPERPAM_KEY_SHARE_RECONCILE_INTERVAL", 300),
    },
}
