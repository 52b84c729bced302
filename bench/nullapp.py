"""A WSGI application that does nothing: what a server costs without Django.

Served with ``--app null``. For runscgi it becomes the project's WSGI_APPLICATION
through ``nullapp_settings`` (the command serves WSGI_APPLICATION); the anchors import
``nullapp:application`` directly.
"""

BODY = b"Hello from django-scgi\n"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    start_response("200 OK", list(HEADERS))
    return [BODY]
