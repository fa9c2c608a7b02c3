"""The data flow, step by step: manifest, filing, checksum, packaging, ... cleanup."""
