"""Executors: where job arrays run (Slurm, a local process pool, submitit)."""
