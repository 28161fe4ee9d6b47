"""Webhooks: emitting events (events), subscriptions and deliveries (service), verifying on the receiving side (verify)."""
