from django.apps import AppConfig


class DjangoScgiConfig(AppConfig):
    name = "django_scgi"
    verbose_name = "SCGI server"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
