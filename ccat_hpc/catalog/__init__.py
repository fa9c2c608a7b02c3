"""The observational catalog an instrument team needs before it can file data."""
