"""The governance database and its rules (registry, releases, incidents, audit)."""
