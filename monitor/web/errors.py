"""HTTP statuses for the monitor's errors: the only place that knows them.

The incident manager raises a typed `IncidentError`; the API answers with the status its
type stands for. A new subclass without an entry here answers 409, as before.
"""

from __future__ import annotations

from monitor.core.errors import IncidentConflict, IncidentError, IncidentInvalid, IncidentNotFound

__all__ = ["INCIDENT_STATUS", "status_of"]

INCIDENT_STATUS: dict[type[IncidentError], int] = {
    IncidentNotFound: 404,
    IncidentConflict: 409,
    IncidentInvalid: 422,
}


def status_of(exc: IncidentError) -> int:
    """The HTTP status of a refused incident change (the most specific type wins)."""
    for cls in type(exc).__mro__:
        if cls in INCIDENT_STATUS:
            return INCIDENT_STATUS[cls]
    return 409
