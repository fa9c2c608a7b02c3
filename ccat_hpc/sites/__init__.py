"""Site configs: sites, data locations, routes, retention and Slurm profiles."""
