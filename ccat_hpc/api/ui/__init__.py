"""ops-db-ui: server-rendered pages over the same functions as the API."""
