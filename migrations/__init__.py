"""Alembic migrations; shipped inside the package as `feedsvc.migrations`."""
