"""Composition: batches (and their queue-ahead), chains and plans, task templates, the plan generator."""
