from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "apps.ops"
    label = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        # Imported here: Django imports this module while it builds the app registry, before models
        # (and what imports them) can be loaded.
        from django.db.models.signals import post_delete, post_save

        from . import metrics
        from .breakers import checks  # noqa: F401  (registers the CIRCUIT_BREAKERS system check)
        from .breakers import config as breaker_config
        from .breakers.collector import CircuitBreakerStateCollector
        from .breakers.registry import registry
        from .cache import disconnect_ping_clients
        from .models import BreakerConfigOverride, CircuitBreaker
        from .shutdown import register_cleanup

        # Connections ops keeps besides the cache's pool (the breakers' store, the cache's ping client)
        # close with the worker, like the cache's.
        register_cleanup("breakers-store", registry.disconnect, timeout=1.0)
        register_cleanup("cache-redis-ping", disconnect_ping_clients, timeout=1.0)

        # Admin overrides of breaker settings: read from their table, re-read in this process as
        # soon as one is saved or deleted here (other processes within the refresh interval).
        breaker_config.read_overrides_with(
            lambda: {row.name: row.values() for row in BreakerConfigOverride.objects.all()}
        )
        for model in (BreakerConfigOverride, CircuitBreaker):
            post_save.connect(breaker_config.overrides_changed, sender=model)
            post_delete.connect(breaker_config.overrides_changed, sender=model)
        metrics.add_scrape_collector(CircuitBreakerStateCollector())
