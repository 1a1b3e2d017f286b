"""Imports a client's third-party package, or stops with what to do instead of a traceback.

The packages live in the project's virtual environment (`make clients`, or `python3 -m venv .venv &&
.venv/bin/pip install -r clients/python/requirements.txt`), so the clients run as `.venv/bin/python3 SCRIPT`.
"""
import sys

# What clients/python/requirements.txt allows; 12 and 13 lack `additional_headers` and crash the clients.
WEBSOCKETS_OLDEST = (14, 2)


def import_websockets(script):
    """Returns the `websockets` module, or exits 2 naming the missing or too old package and the fix."""
    fix = ("install the clients' packages into the project's virtual environment with `make clients` (or "
           "`python3 -m venv .venv && .venv/bin/pip install -r clients/python/requirements.txt`), "
           "then run `.venv/bin/python3 " + script + " …`")
    try:
        import websockets
    except ImportError:
        sys.exit(f"{script}: needs the Python package websockets, which {sys.executable} does not have: {fix}")
    version = tuple(int(part) for part in websockets.__version__.split(".")[:2] if part.isdigit())
    if version < WEBSOCKETS_OLDEST:
        sys.exit(f"{script}: needs websockets 14.2 or newer, {sys.executable} has {websockets.__version__}: {fix}")
    return websockets
