"""Durable state behind one protocol: alert state, incidents, timelines, silences.

Callers never see SQL. SQLite is the default backend; a backend for two replicas
(PostgreSQL with atomic claims) implements the same protocol.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from monitor.store.base import Store, StoreError

__all__ = ["Store", "StoreError", "public_dsn", "store_for"]


def store_for(dsn: str | None, state_dir: str) -> Store:
    """The PostgreSQL store when `dsn` is given (`daemon.store`), else the SQLite file in
    `state_dir`. psycopg is imported only then: it is an optional extra."""
    if dsn:
        try:
            from monitor.store.postgres import PostgresStore  # optional extra
        except ImportError as exc:
            raise StoreError(
                "daemon.store is a PostgreSQL URL but psycopg is not installed:"
                " pip install 'project-asset-monitor[postgresql]'"
            ) from exc
        return PostgresStore(dsn)
    from monitor.store.sqlite import SqliteStore, default_state_path

    return SqliteStore(default_state_path(state_dir))


def public_dsn(dsn: str) -> str:
    """A PostgreSQL DSN as it may be shown: `postgresql://user@host:port/db`, without its
    password and without its other parameters (they may hold one too). Takes the URL
    form and libpq's `key=value` form."""
    try:
        if "://" in dsn:
            parts = urlsplit(dsn)
            user, host, port = parts.username, parts.hostname or "", str(parts.port or "")
            dbname = parts.path.lstrip("/")
        else:
            pairs = {m["k"]: m["v"].strip("'") for m in _PAIR.finditer(dsn)}
            user, host, port = pairs.get("user"), pairs.get("host", ""), pairs.get("port", "")
            dbname = pairs.get("dbname", "")
    except ValueError:
        return "postgresql://(unparsable DSN)"
    at = f"{user}@" if user else ""
    colon = f":{port}" if port else ""
    return f"postgresql://{at}{host}{colon}/{dbname}"


_PAIR = re.compile(r"(?P<k>\w+)\s*=\s*(?P<v>'(?:[^'\\]|\\.)*'|\S+)")
