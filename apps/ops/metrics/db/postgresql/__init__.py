"""PostgreSQL (psycopg 3, native pool) with query and connection metrics."""
