"""The FUSE edge: pyfuse3 operations over the vfs, and the one errno mapping."""
