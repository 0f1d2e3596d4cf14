from django.apps import AppConfig


class RecordingsConfig(AppConfig):
    name = "recordings"
    verbose_name = "Recordings"

    def ready(self) -> None:
        # Bind @shared_task to our configured app in web processes too.
        from keeperpam.celery import app  # noqa: F401
