#!/usr/bin/env bash
# .ci/run's INTEGRATION_RUNNER: the tests marked `integration` with the real services.
# Each test starts (and stops) its own Celery worker on a queue unique to the run, with
# the test database and data directories, so nothing has to be started here; the
# broker-restart test runs a private redis-server on a free port.
# Needs DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL (Redis), which .ci/run exports.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATABASE_URL:?DATABASE_URL must point at PostgreSQL}"
: "${CELERY_BROKER_URL:?CELERY_BROKER_URL must point at Redis}"
exec make test PYTEST_MARKERS=integration
