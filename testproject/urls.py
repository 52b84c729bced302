from django.urls import path

from . import views

urlpatterns = [
    path("", views.hello, name="hello"),
    path("json/", views.small_json, name="json"),
    path("stream/", views.stream, name="stream"),
    path("stream-error/", views.stream_error, name="stream-error"),
    path("big/", views.big, name="big"),
    path("upload/", views.upload, name="upload"),
    path("echo/", views.echo, name="echo"),
    path("db/", views.db, name="db"),
    path("sleep/", views.sleep, name="sleep"),
    path("slow-cleanup/", views.slow_cleanup, name="slow-cleanup"),
    path("info/", views.info, name="info"),
    path("info/<path:rest>", views.info, name="info-rest"),
    path("error/", views.error, name="error"),
    path("redirect/", views.redirect_home, name="redirect"),
    path("cookies/", views.cookies, name="cookies"),
    path("file/", views.file, name="file"),
    path("offload/", views.offload, name="offload"),
    path("stats/", views.stats, name="stats"),
    path("db-upload/", views.db_upload, name="db-upload"),
    path("db-big/", views.db_big, name="db-big"),
    path("stream-error-early/", views.stream_error_early, name="stream-error-early"),
    path("big-body/", views.big_body, name="big-body"),
]
