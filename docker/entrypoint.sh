#!/bin/sh
# Container entry point: optionally apply migrations (the web service does, once
# its database is healthy), then run the given command as PID 1.
set -eu

if [ "${KEEPERPAM_MIGRATE_ON_START:-0}" = "1" ]; then
    python manage.py migrate --noinput
fi

exec "$@"
