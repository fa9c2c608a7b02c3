"""Moving files between sites: the transfer methods (copy, rsync, bbcp)."""
