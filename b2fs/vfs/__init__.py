"""The POSIX view of a bucket: paths, inodes, directory listings and the local overlay."""
