"""The local B2 server (emulator): a disk-backed implementation of the B2 native API.

Modules: ``errors`` (B2 error types), ``validate`` (names, info, ranges), ``store``
(SQLite metadata + content files), ``auth`` (keys, tokens, capabilities), ``shapes``
(JSON per API version), ``api`` (JSON calls), ``transfer`` (uploads/downloads),
``faults`` and ``counters`` (test hooks), ``app`` (ASGI routing), ``server`` (running
uvicorn) and ``process`` (``LocalServer``, the subprocess helper for tests).
"""
