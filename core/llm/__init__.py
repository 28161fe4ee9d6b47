"""LLM agents: calls with budgets and usage (service), the provider manager (providers), budgets, usage reports, metrics."""
