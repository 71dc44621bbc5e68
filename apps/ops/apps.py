from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "apps.ops"
    label = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        from .breakers import checks  # noqa: F401  (registers the CIRCUIT_BREAKERS system check)
