"""Parallel build and verify with MPI ranks (``mpiexec -n N`` or ``srun --mpi=pmix -n N``).

How the work is shared. Every rank computes the same layout and chunk plan (pure
functions of the member list that rank 0 read and broadcast), and the same owner of
every chunk (:func:`item_owner`): a 50 GB file is cut into chunks that all ranks
share, and many small files share chunks, so the ranks move about the same number of
bytes. Each rank reads its chunks' sources and writes them into the preallocated
output with positional writes. Which rank wrote a chunk never changes its bytes.

Why the package hash needs no second read of the output. xxh3-128 is a streaming
hash; hashes of parts cannot be combined into the hash of the whole. Reading 50 GB
back from disk would double the I/O, so instead each rank also sends its chunks, in
order, to rank 0, which runs the one in-order hasher (package and member hashes,
expected checksums) while it does its own, smaller share of chunks. On one node the chunks
travel through shared memory; between nodes over the interconnect, which is faster
than the disks. xxh3 hashes several GB/s on one core, so rank 0 keeps up. Each rank
has at most ``SEND_DEPTH`` chunks in flight, so memory stays ``(1 + SEND_DEPTH)``
chunk buffers per rank, whatever the package size.

Failures. A rank that fails (unreadable or changed source, disk full) sends its
error to rank 0 in place of the chunk; rank 0 then tells the other ranks to stop,
drains what they still send, removes the partial file and sends every rank the
outcome, so all ranks raise the same error and none hangs. Rank 0 is the only rank
that renames the package into place, after every rank has fsynced its writes.

Verify uses the same machinery: ranks read chunks of the package and rank 0 feeds
them in order to the one :class:`~ccat_hpc.engine.verify.PackageVerifier`, which
checks the structure and the hashes exactly as a serial verify does.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ccat_hpc.engine.build import (
    BuildResult,
    ProgressCallback,
    SourceReader,
    abandon,
    as_engine_error,
    assemble,
    create_partial,
    finish,
    partial_path,
    publish,
    start_writeback,
    write_chunk,
)
from ccat_hpc.engine.chunks import DEFAULT_CHUNK_SIZE, Chunk, iter_chunks
from ccat_hpc.engine.errors import EngineError
from ccat_hpc.engine.hashing import StreamHasher
from ccat_hpc.engine.layout import MemberSpec, compute_layout
from ccat_hpc.engine.reader import DEFAULT_READ_SIZE, RangeSource, read_index
from ccat_hpc.engine.verify import PackageVerifier, VerifyReport

if TYPE_CHECKING:
    from mpi4py.MPI import Intracomm

T = TypeVar("T")
R = TypeVar("R")

SEND_DEPTH = 2
#: In every cycle of items, rank 0 produces one and each other rank this many: rank 0
#: also receives and hashes every byte, so it takes a smaller share of the reading.
WORKER_SHARE = 2
TAG_DATA, TAG_FAILED, TAG_DONE, TAG_STOP, TAG_OUTCOME = range(1, 6)

#: Set in the environment of processes started by an MPI launcher.
_LAUNCHER_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE")


def launched_ranks(environ: Mapping[str, str]) -> int | None:
    """How many ranks the launcher started (0 when it does not say); None: no launcher."""
    if not any(name in environ for name in _LAUNCHER_VARIABLES):
        return None
    for name in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"):
        value = environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 0


def world(environ: Mapping[str, str] | None = None) -> Intracomm | None:
    """MPI's world communicator when this process is one of several ranks, else None.

    Without an MPI launcher, or with one rank, everything runs serially and mpi4py is
    not imported. With several ranks mpi4py is required: running N serial builds of
    one package side by side would be wrong, so that is an error.
    """
    ranks = launched_ranks(os.environ if environ is None else environ)
    if ranks is None or ranks == 1:
        return None
    try:
        from mpi4py import MPI
    except ImportError:
        raise EngineError(
            "started by an MPI launcher, but mpi4py is not installed "
            "(pip install 'ccat-hpc[mpi]', or run one process)"
        ) from None
    comm = MPI.COMM_WORLD
    return comm if comm.Get_size() > 1 else None


def item_owner(number: int, ranks: int) -> int:
    """The rank that produces item ``number`` (pure; the output never depends on it)."""
    if ranks == 1:
        return 0
    position = number % (1 + WORKER_SHARE * (ranks - 1))
    return 0 if position == 0 else 1 + (position - 1) % (ranks - 1)


def is_root(comm: Intracomm | None) -> bool:
    return comm is None or comm.Get_rank() == 0


def on_root(comm: Intracomm, work: Callable[[], T]) -> T:
    """Run ``work`` on rank 0; every rank gets its result or raises its EngineError."""
    outcome: tuple[bool, Any] | None = None
    if comm.Get_rank() == 0:
        try:
            outcome = (True, work())
        except EngineError as exc:
            outcome = (False, exc)
        except BaseException:
            comm.bcast((False, EngineError("rank 0 failed (see its error output)")), root=0)
            raise
    succeeded, value = comm.bcast(outcome, root=0)
    if not succeeded:
        raise value
    return value  # type: ignore[no-any-return]


def on_every_rank(
    comm: Intracomm, work: Callable[[], T], undo: Callable[[T], object] | None = None
) -> T:
    """Run ``work`` on every rank; if any rank fails, all raise the lowest rank's error.

    Ranks that succeeded while another failed call ``undo`` on their result first
    (e.g. to close what they opened).
    """
    error: EngineError | None = None
    try:
        result = work()
    except EngineError as exc:
        error = exc
    first = next((e for e in comm.allgather(error) if e is not None), None)
    if first is None:
        return result
    if error is not None:
        raise error
    if undo is not None:
        undo(result)
    raise first


@dataclass
class OrderedStream(Generic[T]):
    """Items produced by the ranks in turn (:func:`item_owner`), consumed in order by rank 0.

    ``produce(item, buffer)`` fills a buffer with the item's bytes (and may write
    them somewhere); ``consume(item, data)`` runs on rank 0 for every item in order;
    ``conclude()`` runs on rank 0 after every rank finished without error, and its
    result goes to every rank; ``worker_done()`` runs on each other rank after its
    last item (e.g. to fsync its writes).
    """

    items: Callable[[], Iterable[T]]
    produce: Callable[[T, bytearray], memoryview]
    consume: Callable[[T, memoryview], None]
    buffer_size: int
    worker_done: Callable[[], None] = lambda: None


def run_ordered(comm: Intracomm, stream: OrderedStream[T], conclude: Callable[[], R]) -> R:
    """Run ``stream`` on every rank; returns conclude()'s result or raises on every rank."""
    if comm.Get_rank() == 0:
        return _Root(comm, stream).run(conclude)
    _run_worker(comm, stream)
    return _await_outcome(comm)  # type: ignore[no-any-return]


class _Root(Generic[T]):
    def __init__(self, comm: Intracomm, stream: OrderedStream[T]) -> None:
        self.comm = comm
        self.stream = stream
        self.buffer = bytearray(stream.buffer_size)
        self.done: set[int] = set()

    def run(self, conclude: Callable[[], R]) -> R:
        try:
            self._consume_all()
            self._await_workers()
            outcome: tuple[bool, Any] = (True, conclude())
        except Exception as exc:
            self._stop_and_drain()
            outcome = (False, exc if isinstance(exc, EngineError) else EngineError(str(exc)))
            self._send_outcome(outcome)
            raise
        except BaseException:
            self._stop_and_drain()
            self._send_outcome((False, EngineError("rank 0 was interrupted")))
            raise
        self._send_outcome(outcome)
        return outcome[1]  # type: ignore[no-any-return]

    def _consume_all(self) -> None:
        size = self.comm.Get_size()
        for number, item in enumerate(self.stream.items()):
            owner = item_owner(number, size)
            data = self._receive(owner) if owner else self.stream.produce(item, self.buffer)
            self.stream.consume(item, data)

    def _receive(self, owner: int) -> memoryview:
        from mpi4py import MPI

        status = MPI.Status()
        self.comm.Probe(source=owner, tag=MPI.ANY_TAG, status=status)
        if status.Get_tag() == TAG_DATA:
            view = memoryview(self.buffer)[: status.Get_count(MPI.BYTE)]
            self.comm.Recv([view, MPI.BYTE], source=owner, tag=TAG_DATA)
            return view
        message = self.comm.recv(source=owner, tag=status.Get_tag())
        if status.Get_tag() == TAG_DONE:
            self.done.add(owner)
            raise EngineError(f"rank {owner} stopped before sending all its chunks")
        raise message

    def _await_workers(self) -> None:
        for rank in range(1, self.comm.Get_size()):
            if rank in self.done:
                continue
            from mpi4py import MPI

            status = MPI.Status()
            message = self.comm.recv(source=rank, tag=MPI.ANY_TAG, status=status)
            if status.Get_tag() == TAG_FAILED:
                raise message
            self.done.add(rank)

    def _stop_and_drain(self) -> None:
        """Tell every rank still working to stop; take what they send until each is done."""
        from mpi4py import MPI

        workers = set(range(1, self.comm.Get_size())) - self.done
        requests = [self.comm.isend(None, dest=rank, tag=TAG_STOP) for rank in workers]
        status = MPI.Status()
        while workers - self.done:
            self.comm.Probe(source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG, status=status)
            source, tag = status.Get_source(), status.Get_tag()
            if tag == TAG_DATA:
                self.comm.Recv([self.buffer, MPI.BYTE], source=source, tag=tag)
            else:
                self.comm.recv(source=source, tag=tag)
                if tag == TAG_DONE:
                    self.done.add(source)
        MPI.Request.waitall(requests)

    def _send_outcome(self, outcome: tuple[bool, Any]) -> None:
        for rank in range(1, self.comm.Get_size()):
            self.comm.send(outcome, dest=rank, tag=TAG_OUTCOME)


def _run_worker(comm: Intracomm, stream: OrderedStream[T]) -> None:
    from mpi4py import MPI

    rank, size = comm.Get_rank(), comm.Get_size()
    buffers = [bytearray(stream.buffer_size) for _ in range(SEND_DEPTH)]
    pending: deque[MPI.Request] = deque()
    try:
        mine = (item for n, item in enumerate(stream.items()) if item_owner(n, size) == rank)
        for count, item in enumerate(mine):
            if comm.Iprobe(source=0, tag=TAG_STOP):
                break
            if len(pending) == SEND_DEPTH:
                pending.popleft().Wait()
            data = stream.produce(item, buffers[count % SEND_DEPTH])
            pending.append(comm.Isend([data, MPI.BYTE], dest=0, tag=TAG_DATA))
        else:
            stream.worker_done()
    except Exception as exc:
        error = exc if isinstance(exc, EngineError) else EngineError(f"rank {rank}: {exc}")
        comm.send(error, dest=0, tag=TAG_FAILED)
    finally:
        MPI.Request.Waitall(list(pending))
        comm.send(None, dest=0, tag=TAG_DONE)


def _await_outcome(comm: Intracomm) -> Any:
    from mpi4py import MPI

    status = MPI.Status()
    while True:
        message = comm.recv(source=0, tag=MPI.ANY_TAG, status=status)
        if status.Get_tag() == TAG_OUTCOME:
            succeeded, value = message
            if not succeeded:
                raise value
            return value


def build_package_mpi(
    comm: Intracomm,
    list_specs: Callable[[], Sequence[MemberSpec]],
    output: Path,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: ProgressCallback | None = None,
) -> BuildResult:
    """Build ``output`` with every rank of ``comm``; all ranks return the same result."""
    specs = on_root(comm, lambda: list(list_specs()))
    layout = compute_layout(specs)  # the same on every rank, and the same errors
    root = comm.Get_rank() == 0
    # rank 0 creates (and locks) the partial; then the others open it
    root_fd = on_root(comm, lambda: create_partial(output, layout.total_size))
    fd = on_every_rank(
        comm,
        lambda: root_fd if root else _open_for_writing(partial_path(output)),
        lambda opened: abandon(opened, output) if root else os.close(opened),
    )
    reader = SourceReader(specs)
    hasher = StreamHasher(layout, specs)
    zeros = bytes(chunk_size)

    def produce(chunk: Chunk, buffer: bytearray) -> memoryview:
        data = assemble(chunk, reader, buffer)
        try:
            write_chunk(fd, buffer, len(data), chunk.start, zeros)
        except OSError as exc:
            raise as_engine_error(exc, output) from None
        start_writeback(fd, chunk.start, len(data))
        return data

    def consume(chunk: Chunk, data: memoryview) -> None:
        hasher.consume(chunk, data)
        if progress is not None:
            progress(chunk.end, layout.total_size)

    def worker_done() -> None:
        try:
            os.fsync(fd)  # on a parallel file system each writer flushes its own writes
        except OSError as exc:
            raise as_engine_error(exc, output) from None

    def conclude() -> BuildResult:
        try:
            checksum, index = finish(fd, layout, hasher)
            publish(fd, output)
        except OSError as exc:
            raise as_engine_error(exc, output) from None
        return BuildResult(output, layout.total_size, checksum, index)

    stream = OrderedStream(
        lambda: iter_chunks(layout, chunk_size), produce, consume, chunk_size, worker_done
    )
    try:
        return run_ordered(comm, stream, conclude)
    except BaseException:
        if root:
            abandon(fd, output)
        raise
    finally:
        reader.close()
        if not root:
            os.close(fd)


def _open_for_writing(path: Path) -> int:
    try:
        return os.open(path, os.O_WRONLY)
    except OSError as exc:
        raise EngineError(f"{path}: cannot open for writing: {exc.strerror}") from None


def verify_package_mpi(
    comm: Intracomm,
    open_source: Callable[[], RangeSource],
    expected: str | None = None,
    chunk_size: int = DEFAULT_READ_SIZE,
    progress: ProgressCallback | None = None,
) -> VerifyReport:
    """Verify a package with every rank of ``comm`` reading a share of it."""
    source = on_every_rank(comm, open_source, lambda opened: opened.close())
    try:
        return _verify_on_ranks(comm, source, expected, chunk_size, progress)
    finally:
        source.close()


def _verify_on_ranks(
    comm: Intracomm,
    source: RangeSource,
    expected: str | None,
    chunk_size: int,
    progress: ProgressCallback | None,
) -> VerifyReport:
    total = source.size()
    index = on_root(comm, lambda: read_index(source))
    verifier = PackageVerifier(index, total)

    def produce(offset: int, buffer: bytearray) -> memoryview:
        view = memoryview(buffer)[: min(chunk_size, total - offset)]
        source.read_into(offset, view)
        return view

    def consume(offset: int, data: memoryview) -> None:
        verifier.consume(data)
        if progress is not None:
            progress(verifier.position, total)

    stream = OrderedStream(lambda: range(0, total, chunk_size), produce, consume, chunk_size)
    return run_ordered(comm, stream, lambda: verifier.report(expected))
