"""ops-db-api and ops-db-ui: the REST API and the web interface, one FastAPI process.

The API calls the same pipeline and inventory functions as the CLI; it adds only what
a network service needs: token authentication (``access``), problem details for errors
(RFC 9457), request size and rate limits, and a SystemLog row for every write. Nothing
is built at import time: :func:`ccat_hpc.api.app.create_app` makes the application
from a session factory and :class:`ApiSettings`.
"""
