#!/bin/sh
# ENTRYPOINT of the Dockerfile: prepare, then become the command (CMD) with exec, so the
# command -- runscgi -- is PID 1 and receives `docker stop`'s SIGTERM itself.
set -eu

# The demo keeps SQLite inside the container: create its tables before serving. With a
# shared database and several replicas, set DJANGO_MIGRATE=0 on the servers and migrate
# once, as a one-off: `docker compose run --rm app python manage.py migrate`.
if [ "${DJANGO_MIGRATE:-1}" = 1 ]; then
    python manage.py migrate --noinput -v 0
fi

exec "$@"
