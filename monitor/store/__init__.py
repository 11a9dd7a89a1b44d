"""Durable state behind one protocol: alert state, incidents, timelines, silences.

Callers never see SQL. SQLite is the default backend; a backend for two replicas
(PostgreSQL with atomic claims) implements the same protocol.
"""

from __future__ import annotations

from monitor.store.base import Store, StoreError

__all__ = ["Store", "StoreError"]
