"""The HTTP API (FastAPI) for plants, regulators and auditors, with tenant isolation.

- :func:`api.app.create_app` -- the application factory (no import-time state);
- :func:`api.server.serve` / :func:`api.server.serve_in_thread` -- running it
  (``energymon serve``; the demo);
- :mod:`api.tokens` -- API tokens (``energymon token create|revoke|list``).

Imports ``core``, ``benchmarks``, ``accounting`` (the numbers) and ``ingest`` (only the shared
pipeline behind the HTTP readings push).
"""
