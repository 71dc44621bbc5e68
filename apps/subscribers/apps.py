from django.apps import AppConfig


class SubscribersConfig(AppConfig):
    name = "apps.subscribers"
    label = "subscribers"
    verbose_name = "Subscribers"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (the list's counts forgotten on changes)
