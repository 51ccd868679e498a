"""Evaluations: a dataset, an endpoint and arms (strategy + params) swept over a grid of
compute, run as ordinary jobs on the workers, summarised as scaling curves.

Layers, one concern per module, each importing only those above it::

    datasets     parse and validate JSONL / CSV rows (row numbers in errors), store them
    spec         the submission: arms, grid, seeds, budget (pydantic, no I/O)
    estimators   pass@k, best-of-k, majority@k, weighted majority@k from one run
    statistics   bootstrap intervals, paired differences, McNemar
    planning     which jobs an eval needs (one per problem for sampling arms, one per
                 grid point for search arms) and their job specs
    driver       submit, the eval driver step (start jobs up to the tenant's room), cancel
    aggregation  jobs and nodes -> per-problem outcomes -> points and comparisons
    exports      CSV and JSONL of points, per-problem results and nodes
    plots        accuracy vs N and vs tokens (matplotlib; PNG and SVG)

An eval is a row of ``problem_batches`` with ``kind = "eval"``: it shares the problem
batches' machinery (``jobs.batch_id``, the ``batch`` follow-up a finishing job hands
back, the reaper's sweep for a unit whose driver step was lost, tenant scoping).
"""
