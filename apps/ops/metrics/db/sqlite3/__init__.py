"""SQLite (the embedded development database) with query and connection metrics."""
