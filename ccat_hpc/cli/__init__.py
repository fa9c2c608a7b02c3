"""The ``ccat-hpc`` command line."""
