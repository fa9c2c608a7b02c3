"""Who may do what: roles, scopes and API tokens (the REST API's access control)."""
