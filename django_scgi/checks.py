"""System checks over the ``SCGI_*`` settings, so ``manage.py check`` catches a bad value
before the server starts. Ids are stable: never renumber, never reuse one."""

from __future__ import annotations

from django.conf import settings
from django.core import checks

from . import conf

# One id per option, in the order the options were introduced (not table order).
SETTING_CHECK_IDS: dict[str, str] = {
    "bind": "django_scgi.E001",
    "socket_mode": "django_scgi.E002",
    "max_connections": "django_scgi.E003",
    "backlog": "django_scgi.E004",
    "max_header_size": "django_scgi.E005",
    "max_body_size": "django_scgi.E006",
    "header_timeout": "django_scgi.E007",
    "body_timeout": "django_scgi.E008",
    "write_timeout": "django_scgi.E009",
    "graceful_timeout": "django_scgi.E010",
    "drain_limit": "django_scgi.E011",
    "access_log": "django_scgi.E012",
}


@checks.register()
def check_settings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    errors = []
    for option in conf.OPTIONS:
        problem = conf.check_setting(option, settings)
        if problem:
            errors.append(checks.Error(
                f"{option.setting} is invalid: {problem}",
                hint=option.help,
                id=SETTING_CHECK_IDS[option.name],
            ))
    return errors
