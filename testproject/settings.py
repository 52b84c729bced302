"""Settings of the demo project: SQLite, nothing to configure.

Values that differ between a laptop, CI and a container come from the environment,
so ``docker run -e SCGI_BIND=…`` works without code changes.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# A demo key: set DJANGO_SECRET_KEY for anything reachable by others.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "django-scgi-testproject-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = os.environ.get(
    "DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver"
).split(",")

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.staticfiles",
    "django_scgi",
]

MIDDLEWARE = [
    # First: gemini:// absolute URIs for Gemini requests (docs/gemini.rst).
    "django_scgi.capsule.GeminiMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]

ROOT_URLCONF = "testproject.urls"
WSGI_APPLICATION = "testproject.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_DB_PATH", str(BASE_DIR / "db.sqlite3")),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"
# collectstatic copies the static files here (the Dockerfile does at build time); the
# front-end or WhiteNoise serves them (docs/static-files.rst). With DJANGO_DEBUG=1,
# runscgi serves them from their apps, as runserver does.
STATIC_ROOT = os.environ.get("DJANGO_STATIC_ROOT") or str(BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "testproject" / "static"]

# The mount point when the front-end serves the project below a path (e.g. "/app/").
FORCE_SCRIPT_NAME = os.environ.get("DJANGO_FORCE_SCRIPT_NAME") or None
# "none": no limit on request.body (the memory test reads a large one).
if os.environ.get("DJANGO_DATA_UPLOAD_MAX_MEMORY_SIZE"):
    _limit = os.environ["DJANGO_DATA_UPLOAD_MAX_MEMORY_SIZE"]
    DATA_UPLOAD_MAX_MEMORY_SIZE = None if _limit == "none" else int(_limit)
# Front-ends that terminate TLS send HTTPS=on; nothing to set for that. Set here only to
# test check W003 (a TCP listener that local users reach while Django trusts the proxy).
if os.environ.get("DJANGO_TRUST_PROXY_HEADER"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Directory the file-offload views may hand to the front-end.
PROTECTED_FILES_DIR = os.environ.get("PROTECTED_FILES_DIR", str(BASE_DIR / "testproject" / "files"))
# Only files below these directories may be handed to the front-end (django_scgi.offload).
SCGI_OFFLOAD_ROOTS = [PROTECTED_FILES_DIR]

# runscgi settings (every one has a CLI option too; see README.rst).
SCGI_BIND = os.environ.get("SCGI_BIND") or None
if os.environ.get("SCGI_SOCKET_MODE"):
    SCGI_SOCKET_MODE = os.environ["SCGI_SOCKET_MODE"]
if os.environ.get("SCGI_ALLOW_FROM"):
    SCGI_ALLOW_FROM = os.environ["SCGI_ALLOW_FROM"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "django_scgi": {"handlers": ["console"], "level": os.environ.get("SCGI_LOG_LEVEL", "INFO")},
    },
}
# As production logging does: Django's request errors (500s with their traceback) on
# the console. Off by default so that tests of failing views keep a quiet output.
if os.environ.get("DJANGO_LOG_REQUESTS"):
    LOGGING["loggers"]["django.request"] = {"handlers": ["console"], "level": "WARNING"}
