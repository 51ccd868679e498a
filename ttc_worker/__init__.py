"""ttc_worker: the Celery app and thin tasks that call into ttc_core."""
