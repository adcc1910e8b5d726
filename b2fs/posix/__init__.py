"""The POSIX vocabulary every layer of the mount shares: errors with their errnos, kinds
and directory entries, the file-info keys that hold attributes in B2, and name rules.

Nothing here imports another part of b2fs but the codec's name constants, so the vfs,
the reader and the write-back can all use it (imports point down).
"""
