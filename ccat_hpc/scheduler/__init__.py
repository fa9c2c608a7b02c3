"""The scheduler: a pure plan from an ops-db snapshot, and the loop that applies it."""
