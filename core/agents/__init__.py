"""The agent registry (registry), trust reads and overrides (trust), availability from health checks and heartbeats (health)."""
