"""Metrics: definitions, tenant-labelling middleware, the /metrics view, multiprocess upkeep.

Public API for business apps: the business counters below and ``tenant_label``.
"""
