"""Project asset monitor: probes what an open-source project ships and pages on failure."""

__version__ = "0.1.0"

__all__ = ["__version__"]
