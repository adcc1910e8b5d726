"""b2fs: mount a Backblaze B2 bucket as a POSIX directory (FUSE).

Packages: ``b2fs.b2`` (the async B2 native-API client), ``b2fs.emulator``
(a local B2 server), ``b2fs.cli`` (the command line); the mount's layers are
described in docs/architecture.md.
"""

__version__ = "0.1.0"
