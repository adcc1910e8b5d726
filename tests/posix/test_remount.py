"""Every rule's persistent state after a remount on an empty cache (issue 10, "Proof").

One build of every case (``PERSISTENT`` of each rule module, as each of its
actors, each in its own workspace), one unmount (b2fs uploads what is
pending), one mount on a new cache directory (nothing from the local cache
or journal), then one test per case and actor checks the state again, as
the rule's own test checked it on the live mount.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.posix import (
    test_dir_metadata,
    test_names,
    test_ownership,
    test_readdir,
    test_rename_flags,
    test_special_files,
    test_times,
)
from tests.posix.conftest import Workspace, make_workspace
from tests.posix.helpers import ChildFailed, Identity, Persistent

pytestmark = [pytest.mark.mount, pytest.mark.timeout(240)]

MODULES = (test_dir_metadata, test_special_files, test_names, test_times, test_ownership,
           test_readdir, test_rename_flags)  # fmt: skip
CASES = [(case, who) for m in MODULES for case in m.PERSISTENT for who in case.actors]


@pytest.fixture(scope="module")
def remounted(posix_fs: Any) -> dict[str, tuple[Workspace | None, Any, str | None]]:
    """Every case built (workspace, what check needs, why the build failed), then a remount."""
    built: dict[str, tuple[Workspace | None, Any, str | None]] = {}
    for case, who in CASES:
        key = f"{case.name}-{who}"
        try:
            ws = make_workspace(posix_fs, f"remount-{key}", who)
        except BaseException as e:  # pytest.fail in the setup: the owner did not take
            built[key] = (None, None, str(e))
            continue
        try:
            built[key] = (ws, ws.run(case.build, who), None)
        except ChildFailed as e:
            built[key] = (ws, None, str(e).split("\n", 1)[0])
    posix_fs.remount()
    return built


@pytest.mark.parametrize(("case", "who"), CASES, ids=[f"{c.name}-{w}" for c, w in CASES])
def test_state_survives_a_remount(remounted, case: Persistent, who: Identity):
    ws, made, failure = remounted[f"{case.name}-{who}"]
    if failure is not None:
        pytest.fail(f"the build failed before the remount (as in the rule's own test): {failure}")
    assert ws is not None
    ws.run(case.check, who, made)
