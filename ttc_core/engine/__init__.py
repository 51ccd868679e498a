"""The job engine: driver step, expansion, claims, budgets, control, executors."""
