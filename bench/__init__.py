"""Benchmarks of the operations layer: what it costs and how it behaves under faults.

``python -m bench.run`` (``make bench``) starts PostgreSQL, Redis and gunicorn itself, drives them
with ``wrk`` on loopback and prints one table; ``--smoke`` runs every figure with tiny sizes so the
code cannot rot. Figures that matter are ratios measured side by side in the same run.
"""
