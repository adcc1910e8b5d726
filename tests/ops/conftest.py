"""The mount fixtures of tests/mount (real mounts on the session's local server), for ops tests."""

from tests.mount.conftest import b2sync, mount_factory, new_bucket_name  # noqa: F401
