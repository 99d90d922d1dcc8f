"""The container's HEALTHCHECK: exit 0 while balanca's /api/health answers 200, else 1.

It prints the answer, which `docker inspect` keeps. HEALTHCHECK_URL changes the address
(default http://127.0.0.1:8080/api/health); when reads need a token, it is read from the file
that BALANCA_READ_TOKEN_FILE names, as the service reads it.
"""

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    url = os.environ.get("HEALTHCHECK_URL", "http://127.0.0.1:8080/api/health")
    headers = {}
    if token_file := os.environ.get("BALANCA_READ_TOKEN_FILE"):
        with open(token_file) as f:
            headers["Authorization"] = "Bearer " + f.read().strip()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=4) as r:
            print(r.read().decode())
            return 0
    except urllib.error.HTTPError as e:
        print(e.code, e.read().decode())
    except OSError as e:
        print(url, e)
    return 1


if __name__ == "__main__":
    sys.exit(main())
