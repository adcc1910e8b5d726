"""Every change a writable mount makes: files, directories, names — one object for the fs edge.

``Changes`` puts the change mixins together over ``ChangeBase``:
``file_changes`` (create, mknod, symlink, writes, truncate, attributes),
``dir_changes`` (mkdir, rmdir, directory attributes in markers), ``renames``
(unlink, rename, directory trees, replay after a crash) and ``exchange``
(``RENAME_EXCHANGE``).  A read-only mount has none.
"""

from __future__ import annotations

from b2fs.vfs.dir_changes import DirChanges
from b2fs.vfs.exchange import Exchanges
from b2fs.vfs.file_changes import FileChanges


class Changes(FileChanges, DirChanges, Exchanges):
    """create, write, setattr, mkdir, rmdir, unlink, rename... (see the mixins)."""
