"""``manage.py runfcgi``: ``runscgi`` with FastCGI chosen, for people coming from Django's
old ``runfcgi`` (flup, removed in Django 1.9).

Every option is runscgi's; ``--protocol`` defaults to ``fastcgi`` here, whatever
``SCGI_PROTOCOL`` says (the command's name is the choice). ``--protocol scgi`` still wins.
"""

from __future__ import annotations

from typing import Any

from django_scgi import conf

from .runscgi import Command as RunSCGICommand


class Command(RunSCGICommand):
    help = ("Serve this Django project over FastCGI (for Apache mod_proxy_fcgi, nginx "
            "fastcgi_pass, lighttpd mod_fastcgi or Caddy in front): runscgi --protocol "
            "fastcgi.")

    def resolve_config(self, options: dict[str, Any]) -> conf.ServerConfig:
        if options.get("protocol") is None:
            options = {**options, "protocol": "fastcgi"}
        return super().resolve_config(options)
