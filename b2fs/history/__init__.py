"""The history of a bucket, as a mount shows it: every version and every deletion B2 keeps.

B2 keeps each upload of a name as a version and a deletion as a hide marker
(b2fs hides unless ``-o hard_delete``), so nothing overwritten or deleted is
gone until a lifecycle rule purges it.  This package turns that into:

- ``times``: times as users give them (RFC 3339 or epoch) and as the view names
  versions (their upload time in UTC, with a suffix on ties);
- ``versions``: the slim record of one version and which version a name shows
  at a given time;
- ``listing``: ``b2_list_file_versions`` of one directory, cached like the
  mount's listings (``VersionListings``);
- ``past``: the listings of a mount of the past (``-o version_at=TIME``);
- ``view``: the read-only versions view at the mount root (``.b2fs-versions``);
- ``restore``: server-side restores (``b2_copy_file`` of a version, or the
  deletion of the hide markers above it) of a file or a tree;
- ``service``: what the mount answers on its control socket for
  ``b2fs versions`` and ``b2fs restore``.
"""
