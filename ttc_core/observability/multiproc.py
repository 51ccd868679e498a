"""``PROMETHEUS_MULTIPROC_DIR`` for a process family (a Celery worker and its pool).

prometheus_client picks file-backed values when it is imported with the variable set,
so this module imports nothing of it: call :func:`prepare_multiproc_dir` first.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiproc_dir() -> Path:
    """A clean ``PROMETHEUS_MULTIPROC_DIR`` (a new temporary one when it is unset): files
    left by an earlier run of the same node would be added to its counters."""
    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        path = tempfile.mkdtemp(prefix="ttc-worker-metrics-")
        os.environ[MULTIPROC_ENV] = path
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    for entry in directory.glob("*.db"):
        entry.unlink(missing_ok=True)
    return directory
