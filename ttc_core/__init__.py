"""ttc_core: the engine. Settings, errors, the tree model, strategies, verifiers,
the inference client, the store and the step loop shared by every executor.

Nothing here imports a web framework or a queue library.
"""
