"""Metrics of the pipeline, written to an InfluxDB v2 endpoint (victoria-metrics).

``sink_from_env(os.environ)`` gives the sink (a :class:`NullSink` unless
``CCAT_HPC_METRICS_URL`` is set); ``emit(sink, series.TASK, tags, **fields)`` writes one
point of a series from :mod:`ccat_hpc.metrics.series`; ``sink.close(timeout)`` at the
end of the process sends what is queued. Cheap to import (no influxdb-client, no SQLAlchemy).
"""

from ccat_hpc.metrics.point import FieldValue, Point
from ccat_hpc.metrics.series import ALL_SERIES, Series, emit
from ccat_hpc.metrics.sink import (
    InfluxSink,
    MetricsSink,
    NullSink,
    SinkStats,
    sink_from_env,
    sink_or_nothing,
)

__all__ = [
    "ALL_SERIES",
    "FieldValue",
    "InfluxSink",
    "MetricsSink",
    "NullSink",
    "Point",
    "Series",
    "SinkStats",
    "emit",
    "sink_from_env",
    "sink_or_nothing",
]
