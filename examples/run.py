"""Shared command line of the examples: ``python -m ains.examples.<name> [--port N] [--no-register]``.

Reads ``AINS_URL``, ``AINS_API_KEY`` (a key with agents:write, to register and heartbeat) and
``AINS_AGENT_SIGNING_SECRET`` (the API's agent signing secret) from the environment.
"""

from __future__ import annotations

import argparse

from ains.sdk.agent import Agent


def main(agent: Agent, default_port: int) -> None:
    parser = argparse.ArgumentParser(description=f"AINS example agent {agent.id}")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=default_port)
    parser.add_argument("--public-url", default=None, help="URL AINS reaches this agent at (default host:port)")
    parser.add_argument("--no-register", action="store_true", help="do not register or heartbeat")
    args = parser.parse_args()
    print(f"{agent.id} serving {sorted(agent.skills)} on http://{args.host}:{args.port}{agent.path}", flush=True)
    agent.serve(host=args.host, port=args.port, public_url=args.public_url, register=not args.no_register)
