from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "apps.ops"
    label = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        from .breakers import checks  # noqa: F401  (registers the CIRCUIT_BREAKERS system check)
        from .breakers.registry import registry
        from .cache import disconnect_ping_clients
        from .shutdown import register_cleanup

        # Redis clients ops keeps besides the cache's pool close with the worker, like the cache's.
        register_cleanup("breakers-redis", registry.disconnect, timeout=1.0)
        register_cleanup("cache-redis-ping", disconnect_ping_clients, timeout=1.0)
