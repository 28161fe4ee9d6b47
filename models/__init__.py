"""The shared contract: wire models, typed tables and pure domain rules."""
