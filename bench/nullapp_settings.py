"""The demo project's settings, serving ``nullapp.application`` instead of Django views."""

from bench_settings import *  # noqa: F403

WSGI_APPLICATION = "nullapp.application"
