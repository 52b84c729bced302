# syntax=docker/dockerfile:1
#
# The demo project (testproject) served by `manage.py runscgi` as PID 1: the image that
# compose.yaml runs, and a model for your own project's image. docs/deployment.rst,
# "Docker", walks through it. tests/test_docker.py runs its ENTRYPOINT + CMD and its
# HEALTHCHECK outside Docker (the test machines have no Docker engine).
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# runscgi runs as "app", whose primary group is www-data (gid 33 in Debian, in this image
# and in httpd:2.4): the unix socket it creates gets that group and mode 660, so httpd's
# workers (User/Group www-data in deploy/docker/httpd.conf) may connect and nobody else
# can. /run/scgi holds the socket (compose.yaml shares it with httpd as a volume; Docker
# copies this directory's owner and mode into a new volume), /var/lib/app the SQLite file.
RUN useradd --system --uid 10001 --gid www-data --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin app \
 && install -d -o app -g www-data -m 0750 /run/scgi \
 && install -d -o app -g www-data -m 0700 /var/lib/app

# The library, installed like any dependency (in your image: pip install django-scgi).
# gcc is there only while pip compiles the optional C parser (django_scgi._speedups, a
# quarter of the server's own cost per request); without it the Python parser serves.
COPY pyproject.toml setup.py README.rst LICENSE /src/
COPY django_scgi /src/django_scgi
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && pip install /src \
 && apt-get purge -y --auto-remove gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/* /src

# The project.
WORKDIR /app
COPY manage.py ./
COPY testproject ./testproject
COPY --chmod=0755 deploy/docker/entrypoint.sh /usr/local/bin/django-scgi-entrypoint

# Static files: collectstatic copies every app's files into STATIC_ROOT (/app/staticfiles)
# at build time, so the image carries them; serve that directory from the front-end or
# with WhiteNoise (docs/static-files.rst).
RUN python manage.py collectstatic --noinput -v 0

USER app

# Settings come from the environment (testproject/settings.py reads them).
ENV DJANGO_SETTINGS_MODULE=testproject.settings \
    DJANGO_DB_PATH=/var/lib/app/db.sqlite3 \
    SCGI_BIND=unix:/run/scgi/scgi.sock \
    SCGI_SOCKET_MODE=660

# PID 1 is runscgi: the entrypoint runs `migrate`, then exec's the command; runscgi
# re-executes itself once with os.execv (gevent must patch before Django loads), which
# keeps the PID. `docker stop` sends SIGTERM to runscgi itself: it stops accepting,
# finishes the requests in flight (up to SCGI_GRACEFUL_TIMEOUT, 30 s by default; give
# the container a longer stop timeout, compose.yaml's stop_grace_period) and exits 0.
ENTRYPOINT ["/usr/local/bin/django-scgi-entrypoint"]
CMD ["python", "manage.py", "runscgi"]

# Exit 0 below 500, 1 for a 5xx or a 400 (the Host, from ALLOWED_HOSTS, refused), 2 when
# the socket does not answer.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "django_scgi.client", "unix:/run/scgi/scgi.sock", "/", "-q", "--timeout", "4"]
