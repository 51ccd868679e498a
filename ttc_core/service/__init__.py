"""Tenancy, idempotency, limits and submission, shared by the API and the CLI."""
