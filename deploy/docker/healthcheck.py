#!/usr/bin/env python3
"""Container healthcheck: exit 0 if GET <url> answers 2xx, 1 otherwise.

Standard library only, so it works in the slim image (no curl there).
Installed as /usr/local/bin/ains-healthcheck; used by docker-compose healthchecks, e.g.
    ains-healthcheck http://127.0.0.1:8000/ready
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {os.path.basename(argv[0])} URL", file=sys.stderr)
        return 2
    url = argv[1]
    timeout = float(os.environ.get("HEALTHCHECK_TIMEOUT_SECONDS", "3"))
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        print(f"unhealthy: {url} -> HTTP {exc.code}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"unhealthy: {url} -> {exc}", file=sys.stderr)
        return 1
    if 200 <= status < 300:
        return 0
    print(f"unhealthy: {url} -> HTTP {status}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
