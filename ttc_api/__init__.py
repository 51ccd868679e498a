"""ttc_api: the FastAPI service (jobs, nodes, events) and a typed client."""
