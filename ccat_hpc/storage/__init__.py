"""Storage backends: one interface (:mod:`.base`) for folders, S3 buckets and (declared) tape."""
