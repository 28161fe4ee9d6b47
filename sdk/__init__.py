"""The AINS Python SDK: a typed client (sync and async) and a framework for writing agents.

``from ains.sdk import Client, AsyncClient`` to submit and watch work; ``from ains.sdk.agent import Agent`` to write an
agent. Wire models come from ``models`` (the API's own contract).
"""

from ains.sdk.client import AsyncClient, Client
from ains.sdk.errors import ApiError, ClientError, NotFound, TransportError, WaitTimeout
from ains.sdk.transport import RetryPolicy

__all__ = [
    "ApiError",
    "AsyncClient",
    "Client",
    "ClientError",
    "NotFound",
    "RetryPolicy",
    "TransportError",
    "WaitTimeout",
]
