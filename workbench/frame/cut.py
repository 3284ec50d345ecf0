"""How a split's inputs are cut: partitions of a Frame's rows, made in one pass.

A split (see :mod:`workbench.engine.split`) runs its plan once per :class:`Partition`.
A Frame that is not resident is cut when the first partition asks for it: each host
chunk goes to the device once, the filters straight above its scan keep their rows
there, the rows are reordered by partition and come back to the host (into registered
blocks of :mod:`workbench.frame.hostpool`, which the GPU reads in place, where it has
room), read by every partition of the split. When what the filters keep fits one
partition, that partition answers the whole plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Partition:
    """Rows ``index`` of ``count`` hash partitions, by ``keys[id(frame)]`` per frame
    (no keys: the ``index``-th of ``count`` ranges of consecutive rows)."""

    index: int
    count: int
    keys: dict
    #: host tables per partition, by (frame, columns), shared by the partitions of
    #: one split: the inputs cut once (see :func:`scattered`)
    scattered: dict = field(default_factory=dict, compare=False, repr=False)
    #: ``keep(columns, names, feed)`` by ``id(frame)``: the filters above its scan,
    #: applied while its rows are cut (see ``engine.cudf_polars.row_filters``)
    prefilter: dict = field(default_factory=dict, compare=False, repr=False)
    #: bytes one partition may take: a one-Frame split whose cut rows all fit runs as
    #: one partition (``scattered[ONE]`` then says so)
    room: int = 0
    #: run as one partition or not at all: :class:`ManyKept` is raised, before the cut
    #: when the filters keep too much of a sample, during it once they have
    only_one: bool = False


class ManyKept(Exception):
    """The rows a split's filters keep do not fit one partition (``Partition.only_one``)."""


#: the sample of a Frame's rows a split's filters are tried on first: this many rows at
#: its start, middle and end (the filters' selectivity, in milliseconds on the device)
SAMPLE_ROWS = 20_000


#: the key of ``Partition.scattered`` saying the split's rows went to one partition
ONE = "one partition"
#: the key of ``Partition.scattered`` holding (rows read, rows kept) by the filters
FILTERED = "filtered"


def range_of(rows: int, part: Partition) -> tuple[int, int]:
    """(first row, row count) of row range ``part.index`` of ``part.count``.

    >>> [range_of(10, Partition(i, 3, {})) for i in range(3)]
    [(0, 4), (4, 4), (8, 2)]
    """
    step = -(-rows // part.count)
    first = min(rows, part.index * step)
    return first, min(step, rows - first)


@dataclass
class Cut:
    """One partition's rows on the host: the pieces each chunk left, where the GPU can
    read them in place (registered blocks of the host pool, or unified memory), else
    one table joined on the host."""

    tables: list
    in_place: bool

    def __len__(self) -> int:
        return sum(t.num_rows for t in self.tables)

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tables)

    def on_device(self, names: list[str], log, unified: bool) -> list:
        """The rows' columns ``names`` on the device (pylibcudf columns).

        Pieces read in place are concatenated by libcudf straight from host memory
        into one device copy; one table is copied buffer by buffer (in one pinned copy
        each where registered, through the staging buffers where not).
        """
        from workbench.frame import device

        def upload(table, in_place):
            return [device.to_column(table.column(n).chunk(0), n, zero_copy=in_place, log=log)
                    for n in names]

        tables = [t for t in self.tables if t.num_rows] or self.tables[:1]
        if len(tables) == 1:
            return upload(tables[0], unified)
        import pylibcudf as plc

        views = [plc.Table(upload(t, True)) for t in tables]
        return plc.concatenate.concatenate(views).columns()


def one_or(pieces: list, frame, wanted, part: Partition):
    """Partition ``part.index``'s piece or, when the split reads this one Frame and all
    its cut rows fit one partition (its filters kept few), every row: the first
    partition then answers the whole plan (its groups are all there) and the split
    stops after it."""
    if part.index == 0 and len(part.keys) == 1 and part.count > 1 and \
            sum(p.nbytes for p in pieces) <= part.room:
        part.scattered[ONE] = True
    if not part.scattered.get(ONE):
        return pieces[part.index]
    key = (ONE, id(frame), tuple(wanted))
    if key not in part.scattered:
        (part.scattered[key],) = joined([[t for p in pieces for t in p.tables]],
                                        all(p.in_place for p in pieces))
    return part.scattered[key]


def scattered(frame, wanted, keys, feed, part: Partition) -> list:
    """The frame's columns ``wanted`` cut into ``part.count`` host cuts (:class:`Cut`) in one
    pass; into one with ``part.only_one``, whose rows all answer in the first partition.

    Each chunk goes to the device once, is hashed and reordered by partition there
    and comes back to the host: into blocks of the host pool when it has room (the
    pieces then stay as they are, and the GPU reads them in place), else through
    pinned staging into fresh memory, each partition's pieces joined into one
    plain-memory table. They are kept for the rest of the split.
    The filters straight above the Frame's scan (``part.prefilter``) are applied to
    each chunk on the device first, so only the rows they keep are cut and come back.
    """
    key = (id(frame), tuple(wanted))
    if key not in part.scattered:
        from workbench.frame import device, hostpool
        from workbench.frame.scan import DeviceChunks
        from workbench.memory import consumers

        hashed = [wanted.index(k) for k in keys]
        log = frame._session.transfers
        pool = hostpool.shared(frame._session.policy)
        take = pool.take if pool is not None else None
        in_place = frame._unified or pool is not None
        keep = part.prefilter.get(id(frame))
        if part.only_one:
            few_kept(frame, wanted, keep, feed, part.room)
        read = kept = kept_bytes = 0
        # with only_one every kept row goes to the first partition: nothing to hash
        count, share = (1, consumers.FILTER_SHARE) if part.only_one else (part.count, consumers.CUT_SHARE)
        pieces = [[] for _ in range(count)]
        for columns in DeviceChunks(frame, wanted, feed, share=share).columns():
            if keep is not None:
                read += columns[0].size() if columns else 0
                try:
                    columns, rows = keep(columns, wanted, feed)
                    kept += rows
                except Exception as err:  # noqa: BLE001 - the plan filters them anyway
                    if part.only_one:
                        raise ManyKept(f"the filters failed ({type(err).__name__})") from err
                    keep, read = None, 0
                    part.scattered[FILTERED] = f"not applied ({type(err).__name__}: {err})"[:200]
            host, offsets = device.scatter(columns, hashed, count, wanted, log, take)
            in_place = in_place and (frame._unified or _registered(host, device))
            del columns
            kept_bytes += host.nbytes
            if part.only_one and kept_bytes > part.room:
                raise ManyKept(f"the filters kept over {kept_bytes:,} bytes")
            for i in range(count):
                pieces[i].append(host.slice(offsets[i], offsets[i + 1] - offsets[i]))
        if keep is not None:
            part.scattered[FILTERED] = (read, kept)
        part.scattered[key] = joined(pieces, in_place)
    return part.scattered[key]


def _registered(table, device) -> bool:
    """Whether every buffer of ``table`` lies in registered memory."""
    return all(device.is_pinned(b.address, b.size) for col in table.columns
               for chunk in col.chunks for b in chunk.buffers() if b is not None and b.size)


def few_kept(frame, wanted, keep, feed, room: int) -> None:
    """Raise :class:`ManyKept` unless the filters ``keep``, tried on a sample of the
    frame's rows on the device, say its rows they keep take at most half of ``room``
    (half: a sample's share is an estimate)."""
    from workbench.frame.scan import host_rows_on_device

    if keep is None:
        raise ManyKept("no filters above the scan")
    rows = len(frame)
    read = kept = 0
    for first in (0, max(0, rows // 2 - SAMPLE_ROWS // 2), max(0, rows - SAMPLE_ROWS)):
        count = min(SAMPLE_ROWS, rows - first)
        read += count
        kept += keep(host_rows_on_device(frame, wanted, first, count), wanted, feed)[1]
    share = kept / max(1, read)
    expected = share * sum(frame._table.column(n).nbytes for n in wanted)
    if expected > room / 2:
        raise ManyKept(f"the filters keep ~{share:.0%} of a sample's rows, ~{expected:,.0f} bytes")


def joined(pieces: list, in_place: bool) -> list[Cut]:
    """Each partition's pieces (Arrow tables) as a :class:`Cut`: left as they are when
    the GPU can read them ``in_place``, else joined into one plain-memory table, the
    partitions in parallel on the copy threads (Arrow's concatenation releases the
    GIL). Not pinned then: each crosses to the device once or twice, through the
    staging buffers, cheaper than registering fresh pages."""
    import pyarrow as pa

    from workbench.frame.table import copy_threads, normalize

    if in_place:
        return [Cut(list(tables), True) for tables in pieces]

    def join(tables):  # one chunk per column here: normalize then starts no threads
        return Cut([normalize(pa.concat_tables(tables, promote_options="permissive")
                              .combine_chunks())], False)

    return list(copy_threads().map(join, pieces))
