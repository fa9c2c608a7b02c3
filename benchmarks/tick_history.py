"""Years of archived history in a PostgreSQL ops-db, written fast (for the tick benchmark).

Everything a file leaves behind on its way to the archive, for N files, written with
``INSERT … SELECT generate_series`` on the server (no row crosses the network):

- one ExecutedObsUnit + FiledManifest + SystemLog per execution × module (one module
  per execution, the modules in turn), its files ARCHIVED in one RawDataPackage;
- per file: its SOURCE RawDataFilePhysicalCopy and one RawDataFileCheck (checksummed);
- per package: ARCHIVED, its metadata, copies in both buffers and the archive, one
  LongTermArchiveTransfer SUCCEEDED (+ log);
- per DataTransferPackage (``packages_per_bundle`` packages): ARCHIVED, copies in both
  buffers, one DataTransfer SUCCEEDED (+ log), and the five job batches that moved it
  (checksum … archive), DONE, one task each, SUCCEEDED.

Executions are spread evenly over ``years`` ending a day ago. Copies past their site's
retention (SOURCE 30 days, BUFFER 7 days) are DELETED, as the cleanup step leaves them
(``cleanup=False``: every copy stays VERIFIED, as if cleanup never ran); archive
copies stay VERIFIED. Package member indexes are left empty (NULL).

The tables with one row per file are written without their secondary indexes, unique
and foreign-key constraints, which are then created again from their own definitions
(read from the catalog first): the index builds sort once, and adding the foreign keys
back checks every row against its parent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, text

#: the tables with one row per file
PER_FILE_TABLES = (
    "raw_data_file",
    "physical_copy",
    "raw_data_file_physical_copy",
    "raw_data_file_check",
)
#: the tables written here with explicit ids: they must be empty first
FILLED_TABLES = (
    *PER_FILE_TABLES,
    "executed_obs_unit",
    "filed_manifest",
    "job_batch",
    "job_task",
    "data_transfer_package",
    "data_transfer_package_physical_copy",
    "raw_data_package",
    "raw_data_package_metadata",
    "raw_data_package_physical_copy",
    "data_transfer",
    "data_transfer_log",
    "long_term_archive_transfer",
    "long_term_archive_transfer_log",
)
BATCH_KINDS = ("checksum", "package", "bundle", "transfer", "archive")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class HistoryShape:
    files: int
    files_per_package: int = 200
    packages_per_bundle: int = 25
    file_size: int = 50_000_000
    years: float = 3.0
    cleanup: bool = True

    @property
    def packages(self) -> int:
        return -(-self.files // self.files_per_package)

    @property
    def bundles(self) -> int:
        return -(-self.packages // self.packages_per_bundle)


def _params(shape: HistoryShape) -> dict[str, Any]:
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    span = timedelta(days=365.25 * shape.years)
    now = datetime.now(UTC)
    return {
        "n": shape.files,
        "f": shape.files_per_package,
        "r": shape.packages_per_bundle,
        "e": shape.packages,
        "size": shape.file_size,
        "t0": end - span,
        "gap": span / max(shape.packages, 1),
        "source_cutoff": now - timedelta(days=30) if shape.cleanup else now - span * 2,
        "buffer_cutoff": now - timedelta(days=7) if shape.cleanup else now - span * 2,
    }


# Temporary tables: the modules in turn, one row per execution (= package), one per bundle.
SETUP = [
    """
    CREATE TEMP TABLE tb_module AS
    SELECT (row_number() OVER (ORDER BY im.id) - 1)::int AS m, im.id AS module_id,
           im.name AS module_name, ins.name AS instrument_name,
           (SELECT dl.id FROM data_location dl WHERE dl.location_type = 'SOURCE'
              AND dl.instrument_name = ins.name ORDER BY dl.id LIMIT 1) AS location_id,
           ou.id AS obs_unit_id, ou.name AS obs_unit_name
    FROM instrument_module im
    JOIN instrument ins ON ins.id = im.instrument_id
    JOIN LATERAL (SELECT id, name FROM obs_unit WHERE instrument_id = ins.id
                  ORDER BY id LIMIT 1) ou ON true
    WHERE EXISTS (SELECT 1 FROM data_location dl WHERE dl.location_type = 'SOURCE'
                  AND dl.instrument_name = ins.name)
    """,
    """
    CREATE TEMP TABLE tb_exec AS
    SELECT i, md5('ccat-tick-bench-' || i)::uuid AS eid, mo.*,
           CAST(:t0 AS timestamptz) + (i - 1) * CAST(:gap AS interval) AS start_time,
           (i - 1) / :r + 1 AS dtp, LEAST(:f, :n - (i - 1) * :f) AS nfiles
    FROM generate_series(1, :e) AS i
    JOIN tb_module mo ON mo.m = (i - 1) % (SELECT count(*) FROM tb_module)
    """,
    "ALTER TABLE tb_exec ADD PRIMARY KEY (i)",
    """
    CREATE TEMP TABLE tb_dtp AS
    SELECT dtp AS d, max(start_time) + interval '2 hours' AS t, sum(nfiles) AS nfiles,
           min(i) AS first_rdp, max(i) AS last_rdp
    FROM tb_exec GROUP BY dtp
    """,
    "ALTER TABLE tb_dtp ADD PRIMARY KEY (d)",
    """
    CREATE TEMP TABLE tb_loc AS
    SELECT (SELECT id FROM data_location WHERE name = 'chile-buffer-01') AS chile_buffer,
           (SELECT id FROM data_location WHERE name = 'cologne-buffer-01') AS cologne_buffer,
           (SELECT id FROM data_location WHERE location_type = 'LONG_TERM_ARCHIVE'
              ORDER BY id LIMIT 1) AS archive,
           (SELECT id FROM data_transfer_route ORDER BY id LIMIT 1) AS route
    """,
    "ANALYZE tb_module",
    "ANALYZE tb_exec",
    "ANALYZE tb_dtp",
]

# (label, statement); the per-file tables last.
FILL = [
    (
        "executed_obs_unit",
        """
        INSERT INTO executed_obs_unit (id, obs_unit_id, start_time, end_time, status,
            mean_pwv_mm, mean_elevation_deg, extra_metadata, created_at)
        SELECT eid, obs_unit_id, start_time, start_time + interval '30 minutes', 'success',
               0.4 + (i % 10) * 0.1, 40 + i % 30,
               '{"manifest": {"generator": "ccat-hpc tick benchmark"}}'::jsonb,
               start_time + interval '31 minutes'
        FROM tb_exec
        """,
    ),
    (
        "filed_manifest",
        """
        INSERT INTO filed_manifest (id, executed_obs_unit_id, instrument_module_id,
            data_location_id, digest, source_name, file_count, total_bytes, created_at)
        SELECT i, eid, module_id, location_id, md5('manifest-' || i),
               eid || '-' || module_name || '.json', nfiles, nfiles * CAST(:size AS bigint),
               start_time + interval '31 minutes'
        FROM tb_exec
        """,
    ),
    (
        "system_log",
        """
        INSERT INTO system_log (level, source, message, details, created_at)
        SELECT 'info', 'filing', 'filed ' || nfiles || ' files of ' || instrument_name || '/'
               || module_name || ' execution ' || eid,
               jsonb_build_object('manifest', eid || '-' || module_name || '.json'),
               start_time + interval '31 minutes'
        FROM tb_exec
        """,
    ),
    (
        "job_batch",
        """
        INSERT INTO job_batch (id, kind, executor, state, task_count, site_name, profile,
            parameters, working_dir, external_ids, submitted_at, finished_at, created_at)
        SELECT 5 * (d - 1) + k, kind, 'slurm', 'done', 1, site, '{}'::jsonb, '{}'::jsonb,
               '/data/ccat/jobs',
               jsonb_build_array(jsonb_build_object('job_id', (100000 + 5 * (d - 1) + k)::text,
                                                    'first_task', 0, 'task_count', 1)),
               t + k * interval '10 minutes', t + k * interval '10 minutes' + interval '5 min',
               t + k * interval '10 minutes'
        FROM tb_dtp CROSS JOIN (VALUES (1, 'checksum', 'chile'), (2, 'package', 'chile'),
            (3, 'bundle', 'chile'), (4, 'transfer', 'chile'), (5, 'archive', 'cologne'))
            AS kinds(k, kind, site)
        """,
    ),
    (
        "job_task",
        """
        INSERT INTO job_task (id, batch_id, task_index, items, state, external_id, host,
            attempts, started_at, finished_at, exit_code, result)
        SELECT 5 * (d - 1) + k, 5 * (d - 1) + k, 0,
               CASE k
                 WHEN 1 THEN (SELECT jsonb_agg(g) FROM generate_series(
                               (first_rdp - 1) * :f + 1, LEAST(last_rdp * :f, :n)) g)
                 WHEN 2 THEN (SELECT jsonb_agg(g) FROM generate_series(first_rdp, last_rdp) g)
                 ELSE jsonb_build_array(d) END,
               'succeeded', (100000 + 5 * (d - 1) + k) || '_0', 'node01', 1,
               t + k * interval '10 minutes', t + k * interval '10 minutes' + interval '4 min',
               0, jsonb_build_object('done', 1)
        FROM tb_dtp CROSS JOIN generate_series(1, 5) AS k
        """,
    ),
    (
        "data_transfer_package",
        """
        INSERT INTO data_transfer_package (id, name, relative_path, state, origin_location_id,
            route_id, priority, size, checksum, checksum_algorithm, attempts, created_at)
        SELECT d, name, 'dtp/' || to_char(t AT TIME ZONE 'UTC', 'YYYY/MM/DD') || '/' || name
               || '.tar', 'archived', l.chile_buffer, l.route, 1,
               nfiles * CAST(:size AS bigint), md5('dtp-' || d), 'xxh3_128', 0, t
        FROM (SELECT *, 'chile-to-cologne_' || to_char(t AT TIME ZONE 'UTC',
                     'YYYYMMDD"T"HH24MISS') || '_' || lpad(d::text, 8, '0') AS name
              FROM tb_dtp) b CROSS JOIN tb_loc l
        """,
    ),
    (
        "raw_data_package",
        """
        INSERT INTO raw_data_package (id, name, relative_path, part_number, state,
            executed_obs_unit_id, instrument_module_id, data_transfer_package_id, size,
            checksum, checksum_algorithm, attempts, created_at)
        SELECT i, name, 'rdp/' || to_char(start_time AT TIME ZONE 'UTC', 'YYYY/MM/DD') || '/'
               || name || '.tar', 0, 'archived', eid, module_id, dtp,
               nfiles * CAST(:size AS bigint), md5('rdp-' || i), 'xxh3_128', 0,
               start_time + interval '1 hour'
        FROM (SELECT *, instrument_name || '_' || module_name || '_' || eid || '_p000' AS name
              FROM tb_exec) x
        """,
    ),
    (
        "raw_data_package_metadata",
        """
        INSERT INTO raw_data_package_metadata (id, raw_data_package_id, dataproduct_type,
            calib_level, obs_collection, obs_id, target_name, facility_name, instrument_name,
            s_ra, s_dec, t_min, t_max, t_exptime, extra)
        SELECT i, i, 'timeseries', 0, 'Deep Spectroscopic Survey', eid::text, obs_unit_name,
               'FYST', instrument_name || ' ' || module_name, 53.12, -27.81,
               extract(epoch FROM start_time) / 86400 + 40587,
               extract(epoch FROM start_time) / 86400 + 40587 + 1800.0 / 86400, 1800,
               jsonb_build_object('obs_unit', obs_unit_name, 'status', 'success')
        FROM tb_exec
        """,
    ),
    (
        "package copies",
        """
        WITH c AS (
            INSERT INTO physical_copy (id, type, data_location_id, state, verified_at,
                deleted_at, created_at)
            SELECT :n + 3 * (i - 1) + k, 'raw_data_package', loc,
                   CASE WHEN k < 3 AND start_time < :buffer_cutoff THEN 'deleted'
                        ELSE 'verified' END,
                   start_time + k * interval '3 hours',
                   CASE WHEN k < 3 AND start_time < :buffer_cutoff
                        THEN start_time + interval '8 days' END,
                   start_time + k * interval '3 hours'
            FROM tb_exec CROSS JOIN tb_loc l CROSS JOIN LATERAL (VALUES
                (1, l.chile_buffer), (2, l.cologne_buffer), (3, l.archive)) AS v(k, loc)
            RETURNING id)
        INSERT INTO raw_data_package_physical_copy (id, raw_data_package_id)
        SELECT id, (id - :n - 1) / 3 + 1 FROM c
        """,
    ),
    (
        "transfer package copies",
        """
        WITH c AS (
            INSERT INTO physical_copy (id, type, data_location_id, state, verified_at,
                deleted_at, created_at)
            SELECT :n + 3 * :e + 2 * (d - 1) + k, 'data_transfer_package', loc,
                   CASE WHEN t < :buffer_cutoff THEN 'deleted' ELSE 'verified' END,
                   t + k * interval '2 hours',
                   CASE WHEN t < :buffer_cutoff THEN t + interval '8 days' END,
                   t + k * interval '2 hours'
            FROM tb_dtp CROSS JOIN tb_loc l CROSS JOIN LATERAL (VALUES
                (1, l.chile_buffer), (2, l.cologne_buffer)) AS v(k, loc)
            RETURNING id)
        INSERT INTO data_transfer_package_physical_copy (id, data_transfer_package_id)
        SELECT id, (id - :n - 3 * :e - 1) / 2 + 1 FROM c
        """,
    ),
    (
        "data_transfer (+ log)",
        """
        WITH x AS (
            INSERT INTO data_transfer (id, data_transfer_package_id, route_id,
                origin_location_id, destination_location_id, state, attempts, started_at,
                finished_at, bytes_transferred, job_batch_id, created_at)
            SELECT d, d, l.route, l.chile_buffer, l.cologne_buffer, 'succeeded', 1,
                   t + interval '40 minutes', t + interval '45 minutes',
                   nfiles * CAST(:size AS bigint), 5 * (d - 1) + 4, t + interval '40 minutes'
            FROM tb_dtp CROSS JOIN tb_loc l
            RETURNING id, bytes_transferred, finished_at)
        INSERT INTO data_transfer_log (id, data_transfer_id, level, message, created_at)
        SELECT id, id, 'info', bytes_transferred || ' bytes by rsync; checksum verified at '
               || 'the destination', finished_at FROM x
        """,
    ),
    (
        "long_term_archive_transfer (+ log)",
        """
        WITH x AS (
            INSERT INTO long_term_archive_transfer (id, raw_data_package_id,
                origin_location_id, destination_location_id, state, attempts, started_at,
                finished_at, bytes_transferred, job_batch_id, created_at)
            SELECT i, i, l.cologne_buffer, l.archive, 'succeeded', 1,
                   start_time + interval '9 hours', start_time + interval '9.1 hours',
                   nfiles * CAST(:size AS bigint), 5 * (dtp - 1) + 5,
                   start_time + interval '9 hours'
            FROM tb_exec CROSS JOIN tb_loc l
            RETURNING id, bytes_transferred, finished_at)
        INSERT INTO long_term_archive_transfer_log (id, long_term_archive_transfer_id, level,
            message, created_at)
        SELECT id, id, 'info', bytes_transferred || ' bytes to the archive; size and checksum '
               || 'verified there', finished_at FROM x
        """,
    ),
    (
        "raw_data_file",
        """
        INSERT INTO raw_data_file (id, name, relative_path, source_location_id, source_device,
            source_inode, source_mtime_ns, file_type, state, executed_obs_unit_id,
            instrument_module_id, raw_data_package_id, size, checksum, checksum_algorithm,
            created_at)
        SELECT k, 'det_' || lpad(j::text, 6, '0') || '.g3',
               x.obs_unit_name || '/' || x.eid || '/' || x.module_name || '/part-'
               || lpad((j / 1000)::text, 4, '0') || '/det_' || lpad(j::text, 6, '0') || '.g3',
               x.location_id, 64768, k,
               (extract(epoch FROM x.start_time) * 1000000000)::bigint + j, 'g3', 'archived',
               x.eid, x.module_id, x.i, :size, md5(k::text), 'xxh3_128',
               x.start_time + interval '31 minutes'
        FROM generate_series(1, :n) AS k
        CROSS JOIN LATERAL (SELECT (k - 1) % :f AS j) jj
        JOIN tb_exec x ON x.i = (k - 1) / :f + 1
        """,
    ),
    (
        "raw_data_file copies",
        """
        INSERT INTO physical_copy (id, type, data_location_id, state, verified_at, deleted_at,
            created_at)
        SELECT k, 'raw_data_file', x.location_id,
               CASE WHEN x.start_time < :source_cutoff THEN 'deleted' ELSE 'verified' END,
               x.start_time + interval '2 hours',
               CASE WHEN x.start_time < :source_cutoff THEN x.start_time + interval '31 days' END,
               x.start_time + interval '31 minutes'
        FROM generate_series(1, :n) AS k JOIN tb_exec x ON x.i = (k - 1) / :f + 1
        """,
    ),
    (
        "raw_data_file_physical_copy",
        """
        INSERT INTO raw_data_file_physical_copy (id, raw_data_file_id)
        SELECT k, k FROM generate_series(1, :n) AS k
        """,
    ),
    (
        "raw_data_file_check",
        """
        INSERT INTO raw_data_file_check (id, raw_data_file_id, physical_copy_id, job_batch_id,
            checked_at, outcome, computed_checksum, expected_checksum)
        SELECT k, k, k, 5 * (x.dtp - 1) + 1, x.start_time + interval '2 hours', 'checksummed',
               md5(k::text), md5(k::text)
        FROM generate_series(1, :n) AS k JOIN tb_exec x ON x.i = (k - 1) / :f + 1
        """,
    ),
]


def _run(
    connection: Connection,
    label: str,
    statements: list[str],
    params: dict[str, Any],
    progress: Progress,
) -> float:
    """Run the statements; their seconds, also shown."""
    start = time.perf_counter()
    for statement in statements:
        connection.execute(text(statement), params)
    seconds = time.perf_counter() - start
    progress(f"  {label:<38} {seconds:7.1f} s")
    return seconds


def _check_empty(connection: Connection) -> None:
    for table in FILLED_TABLES:
        if connection.scalar(text(f'SELECT EXISTS (SELECT 1 FROM "{table}")')):
            raise RuntimeError(f"{table} is not empty: populate a fresh ops-db")


def drop_constraints(connection: Connection, tables: tuple[str, ...]) -> list[str]:
    """Drop the tables' secondary indexes, unique and foreign-key constraints (primary
    keys stay); the statements that create them again, read from the catalog first."""
    constraints = connection.execute(
        text(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE contype IN ('u', 'f') "
            "AND conrelid = ANY(CAST(:tables AS regclass[])) ORDER BY contype DESC, conname"
        ),
        {"tables": list(tables)},
    ).all()
    indexes = connection.execute(
        text(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "WHERE i.indrelid = ANY(CAST(:tables AS regclass[])) AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)"
        ),
        {"tables": list(tables)},
    ).all()
    for table, name, _definition in constraints:  # foreign keys first ('u' < 'f')
        connection.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
    for name, _definition in indexes:
        connection.execute(text(f"DROP INDEX {name}"))
    return [definition for _name, definition in indexes] + [
        f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'
        for table, name, definition in reversed(constraints)  # unique first, then keys
    ]


def _reset_sequences(connection: Connection) -> None:
    """Each filled table's id sequence past its highest id (for the rows written later)."""
    for table in (*FILLED_TABLES, "system_log"):
        sequence = connection.scalar(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table})
        if sequence is not None:
            connection.execute(
                text(f'SELECT setval(:s, (SELECT COALESCE(max(id), 0) + 1 FROM "{table}"), false)'),
                {"s": sequence},
            )


def populate(engine: Engine, shape: HistoryShape, progress: Progress) -> dict[str, float]:
    """Write the history into an ops-db that has sites and catalog but no data; seconds
    per part ("total" included)."""
    params = _params(shape)
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    with engine.begin() as connection:
        _check_empty(connection)
        connection.execute(text("SET LOCAL maintenance_work_mem = '1GB'"))
        connection.execute(text("SET LOCAL work_mem = '256MB'"))
        _run(connection, "temporary tables", SETUP, params, progress)
        restore = drop_constraints(connection, PER_FILE_TABLES)
        for label, statement in FILL:
            seconds[label] = _run(connection, label, [statement], params, progress)
        label = "per-file indexes + constraints"
        seconds[label] = _run(connection, label, restore, params, progress)
        _reset_sequences(connection)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        seconds["VACUUM ANALYZE"] = _run(
            connection, "VACUUM ANALYZE", ["VACUUM ANALYZE"], {}, progress
        )
    seconds["total"] = time.perf_counter() - start
    return seconds
