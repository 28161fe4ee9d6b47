"""Schedules: users' cron schedules on Temporal Schedules (service) and the ones AINS keeps for itself (system)."""
