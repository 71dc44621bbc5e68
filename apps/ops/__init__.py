"""Operations layer: probes, circuit breakers, metrics, graceful shutdown, request logging.

Self-contained: it never imports a business app. Business apps use it only through
``apps.ops.breakers``, ``apps.ops.http``, ``apps.ops.metrics`` and ``apps.ops.admin_guards``.
"""
