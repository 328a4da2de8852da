"""``python -m service.healthcheck``: exit 0 if the local service answers ``/healthz``, else 1.

Used by the Docker ``HEALTHCHECK``; the port comes from ``AS_PORT`` (default 8000).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def check(url: str, timeout_s: float = 3.0) -> bool:
    """True if ``url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return False


def main() -> int:
    port = os.environ.get("AS_PORT", "8000").strip() or "8000"
    return 0 if check(f"http://127.0.0.1:{port}/healthz") else 1


if __name__ == "__main__":
    sys.exit(main())
