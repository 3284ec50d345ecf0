"""Hostile input to wb.cluster, collect_on_cluster, fit_on_cluster and partitioned datasets:
each case asserts the exact error type, that the message names the thing and the fix,
that nothing hangs, and that inputs are unchanged and nothing partial is left."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from pathlib import Path

import polars as pl
import pytest
from distributed import Client, LocalCluster

import workbench as wb
from workbench.cluster import ClusterConnectionError
from workbench.datasets.partitioned import load_dask, write_partitioned
from workbench.engine.distributed import collect_on_cluster
from workbench.ml.distributed import fit_on_cluster


def _digest(path: Path) -> str:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in files)).hexdigest()


def _exactly(info, error: type, *parts: str):
    assert type(info.value) is error, f"{type(info.value).__name__}: {info.value}"
    for part in parts:
        assert part in str(info.value), (part, str(info.value))


class _FakeServer:
    """A TCP server on localhost that is not a Dask scheduler: it accepts and then stays
    silent, or answers with ``reply`` (an HTTP server, say) and hangs up."""

    def __init__(self, reply: bytes | None = None):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.reply, self.conns = reply, []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            if self.reply is not None:
                conn.sendall(self.reply)
                conn.close()

    def close(self):
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture
def silent_server():
    server = _FakeServer()
    yield server
    server.close()


def test_a_silent_non_dask_server_fails_within_the_timeout(silent_server):
    address = f"tcp://127.0.0.1:{silent_server.port}"
    start = time.monotonic()
    with pytest.raises(ClusterConnectionError) as info:
        wb.cluster(address, timeout=2)
    assert time.monotonic() - start < 8
    _exactly(info, ClusterConnectionError, address, "within 2 s", "check the address and port",
             "wb.cluster() without an address")


def test_the_default_timeout_is_seconds_not_forever(silent_server):
    start = time.monotonic()
    with pytest.raises(ClusterConnectionError, match=str(silent_server.port)):
        wb.cluster(f"127.0.0.1:{silent_server.port}")  # no scheme: tcp
    assert time.monotonic() - start < 20


def test_an_http_server_is_not_taken_for_a_scheduler():
    server = _FakeServer(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    try:
        with pytest.raises(ClusterConnectionError) as info:
            wb.cluster(f"tcp://127.0.0.1:{server.port}", timeout=3)
        _exactly(info, ClusterConnectionError, f"127.0.0.1:{server.port}", "scheduler is running")
    finally:
        server.close()


def test_a_closed_port_names_the_address():
    with socket.socket() as s:  # a port that was free a moment ago, nothing listens now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ClusterConnectionError) as info:
        wb.cluster(f"tcp://127.0.0.1:{port}", timeout=1)
    _exactly(info, ClusterConnectionError, f"tcp://127.0.0.1:{port}", "check the address")


@pytest.mark.parametrize("n", [-2, 0, "x", 1.5, True])
def test_bad_worker_counts_are_refused(n):
    with pytest.raises(ValueError) as info:
        wb.cluster(backend="cpu", n_workers=n)
    _exactly(info, ValueError, "n_workers must be a positive whole number", repr(n))


@pytest.mark.parametrize("threads", [0, -1, "4"])
def test_bad_thread_counts_are_refused(threads):
    with pytest.raises(ValueError) as info:
        wb.cluster(backend="cpu", n_workers=1, threads_per_worker=threads)
    _exactly(info, ValueError, "threads_per_worker", repr(threads))


@pytest.mark.parametrize("limit", ["lots", -1, 0, float("nan")])
def test_bad_memory_limits_are_refused(limit):
    with pytest.raises(ValueError) as info:
        wb.cluster(backend="cpu", n_workers=1, memory_limit=limit)
    _exactly(info, ValueError, "memory_limit must be 'auto', a size such as '4GB'")


@pytest.mark.parametrize("timeout", [-5, 0, float("nan"), "soon", None])
def test_bad_timeouts_are_refused(timeout):
    with pytest.raises(ValueError) as info:
        wb.cluster("tcp://127.0.0.1:8786", timeout=timeout)
    _exactly(info, ValueError, "timeout must be a positive number of seconds")


@pytest.mark.parametrize("address, part", [
    ("http://127.0.0.1:8786", "scheme 'http'"),
    ("tcp://127.0.0.1", "needs a host and a port"),
    ("tcp://127.0.0.1:99999", "port from 1 to 65535"),
    ("", "a scheduler address is a string"),
    (8786, "a scheduler address is a string"),
])
def test_malformed_addresses_are_refused_before_connecting(address, part):
    with pytest.raises(ValueError) as info:
        wb.cluster(address)
    _exactly(info, ValueError, part)


def test_an_address_with_worker_options_is_refused():
    with pytest.raises(ValueError) as info:
        wb.cluster("tcp://127.0.0.1:8786", n_workers=2)
    _exactly(info, ValueError, "either an address or worker options")


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as local, \
            Client(local) as c:
        yield c


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_partitioned("h2o_groupby", tmp_path_factory.mktemp("d") / "g", 2000, 2, k=5)


def test_collect_on_cluster_takes_a_lazyframe_and_a_client(client, data):
    with pytest.raises(TypeError) as info:
        collect_on_cluster(pl.read_parquet(f"{data}/*.parquet"), client)
    _exactly(info, TypeError, "takes a polars LazyFrame", "DataFrame")
    with pytest.raises(TypeError) as info:
        collect_on_cluster(pl.scan_parquet(f"{data}/*.parquet"), "tcp://127.0.0.1:8786")
    _exactly(info, TypeError, "distributed.Client", "str")


def test_a_closed_client_is_named():
    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as local:
        c = Client(local)
        c.close()
    with pytest.raises(ValueError) as info:
        collect_on_cluster(pl.LazyFrame({"a": [1]}), c)
    _exactly(info, ValueError, "the Dask client is closed", "wb.cluster()")


def test_a_sink_never_overwrites(client, data, tmp_path):
    existing = tmp_path / "mine.parquet"
    existing.write_bytes(b"the user's own file")
    before = _digest(existing)
    with pytest.raises(FileExistsError) as info:
        collect_on_cluster(pl.scan_parquet(f"{data}/*.parquet"), client, sink=existing)
    _exactly(info, FileExistsError, str(existing), "another sink path")
    assert _digest(existing) == before and sorted(tmp_path.iterdir()) == [existing]


def test_a_float_target_for_a_classifier_is_refused(client, data):
    before = _digest(data)
    with pytest.raises(ValueError) as info:
        fit_on_cluster("xgboost_classifier", str(data), "v3", ["v1", "v2"], client)
    _exactly(info, ValueError, "'v3' is float", "integer or string labels")
    assert _digest(data) == before


@pytest.mark.parametrize("model, target, features, error, part", [
    ("gradient_magic", "v1", ["v2"], ValueError, "model must be one of xgboost_classifier"),
    ("xgboost_regressor", "nope", ["v2"], ValueError, "the target 'nope' is not a column"),
    ("xgboost_regressor", "v3", ["v2", "v9"], ValueError, "feature columns ['v9']"),
    ("xgboost_regressor", "v3", ["v3", "v1"], ValueError, "also listed as a feature"),
    ("xgboost_regressor", None, ["v1"], ValueError, "needs a target column"),
])
def test_bad_fit_arguments_are_named(client, data, model, target, features, error, part):
    with pytest.raises(error) as info:
        fit_on_cluster(model, str(data), target, features, client)
    _exactly(info, error, part)


def test_fit_data_of_the_wrong_kind(client):
    with pytest.raises(TypeError) as info:
        fit_on_cluster("xgboost_regressor", 42, "v1", None, client)
    _exactly(info, TypeError, "Parquet path(s)", "int")


def test_partitioned_write_leaves_a_users_folder_alone(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    before = _digest(folder)
    with pytest.raises(FileExistsError) as info:
        write_partitioned("h2o_groupby", folder, 1000, 2)
    _exactly(info, FileExistsError, str(folder), "notes.txt")
    assert _digest(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no temporary left


@pytest.mark.parametrize("partitions, part", [(0, "positive whole number"), ("4", "positive whole"),
                                              (5000, "at most 1000")])
def test_bad_partition_counts(tmp_path, partitions, part):
    with pytest.raises(ValueError) as info:
        write_partitioned("h2o_groupby", tmp_path / "g", 1000, partitions)
    _exactly(info, ValueError, part)
    assert not any(tmp_path.iterdir())


def test_load_dask_of_nothing(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_dask(tmp_path / "absent")
    _exactly(info, FileNotFoundError, "absent", "is not a catalog dataset", "h2o_groupby")
    with pytest.raises(ValueError) as info:
        load_dask(tmp_path, rows=10)
    _exactly(info, ValueError, "apply to catalog names")
