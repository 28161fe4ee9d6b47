"""Runnable example agents built on the agent SDK (``sdk.agent``)."""
