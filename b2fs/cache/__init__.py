"""The local block cache: object bytes on disk, keyed by (fileId, block index)."""
