"""What ops-db holds, for people: observations, files, the catalog and the sites.

Query functions take a session and never commit; they return plain dataclasses whose
fields are JSON types (``dataclasses.asdict`` gives what ``--json`` prints). Lists are
filtered in SQL, ordered by an indexed key and paged by keyset (``after``), so they stay
fast on millions of rows. The CLI (``ccat-hpc obs|files|catalog|sites``) and the REST
API call the same functions; ``render`` turns their results into text.
"""
