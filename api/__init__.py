"""FastAPI application: thin routes per resource, auth, rate limits, error mapping, metrics, health."""
