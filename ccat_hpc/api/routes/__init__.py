"""The API's endpoints, one module per kind of thing."""
