"""The mount fixtures of tests/mount (real mounts on the session's local server), for the model check."""

from tests.mount.conftest import b2sync, crypt, mount_factory, new_bucket_name, test_vault  # noqa: F401
