"""Problem batches: many problems, one strategy, compute allocated."""
