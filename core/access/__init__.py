"""Who may do what: API keys (keys) and the audit log of mutations (audit)."""
