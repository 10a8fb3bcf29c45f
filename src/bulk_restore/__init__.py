"""bulk-restore: restore large sets of archived S3 objects and get one signal when they are ready."""

__version__ = "0.1.0"
