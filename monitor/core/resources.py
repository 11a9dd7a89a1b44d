"""The monitor's own resources: the open-file limit, and telling a probe that failed
because the monitor ran out of something from a probe that found the asset down.

A probe that fails with EMFILE, ENFILE, ENOBUFS or ENOMEM, or while the process holds
nearly all the descriptors it may, is the monitor's failure (`monitor_resources`), never
the asset's.
"""

from __future__ import annotations

import errno
import os

import structlog

__all__ = [
    "RESOURCE_ERRNOS",
    "is_resource_error",
    "nofile_limit",
    "open_descriptors",
    "probe_reserve",
    "raise_nofile_limit",
    "starved",
]

log = structlog.stdlib.get_logger(__name__)

RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
STARVED_MARGIN = 16  # fewer free descriptors than this: the monitor cannot see


def is_resource_error(exc: BaseException | None) -> bool:
    """Whether `exc` (or an exception it was raised from) says the monitor ran out."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and exc.errno in RESOURCE_ERRNOS:
            return True
        if isinstance(exc, MemoryError):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def nofile_limit() -> int | None:
    """The soft RLIMIT_NOFILE, or None where there is none (not POSIX, or unlimited)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def open_descriptors() -> int | None:
    """How many descriptors the process holds (Linux /proc, macOS /dev/fd), or None."""
    for where in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(where)) - 1  # the directory's own descriptor
        except OSError:
            continue
    return None


def starved() -> bool:
    """Whether the process is at its descriptor limit right now."""
    limit, used = nofile_limit(), open_descriptors()
    return limit is not None and used is not None and used >= limit - STARVED_MARGIN


def probe_reserve(max_concurrency: int) -> int:
    """Descriptors the API may never take: one socket per run in flight (plus one for a
    resolver or a TLS retry), the store's files, the notifiers' connections."""
    return 2 * max_concurrency + 64


def raise_nofile_limit() -> tuple[int, int] | None:
    """Raises the soft open-file limit to the hard one where allowed.

    No call is made when there is nothing to raise (under systemd with `LimitNOFILE=N`
    soft and hard are equal). A refusal (EPERM, a seccomp filter returning an error) is a
    logged warning, never fatal. Returns (soft, hard) after, or None without the module.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (OSError, ValueError) as exc:
            log.warning(
                "open_files_limit_not_raised", soft=soft, hard=hard, error=str(exc) or type(exc).__name__
            )  # fmt: skip
    return int(soft), int(hard)
