"""The tar + hash engine: deterministic POSIX/PAX packages, built and read in parallel."""
