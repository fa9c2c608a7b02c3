"""ccat-hpc: the data center software of the Fred Young Submillimeter Telescope (CCAT)."""

__version__ = "0.1.0"
