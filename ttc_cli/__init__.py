"""The ``ttc`` command line."""
