"""fastnorm.dask on a LocalCluster (asv suite, and a one-off throughput script).

asv: the suites below need ``fastnorm[dask]``; without Dask their setup
raises NotImplementedError, which asv reports as skipped.

Script: ``python asv_benches/bench_dask.py --gib 4`` normalizes a large
float32 array, chunked over its spatial axes, on a LocalCluster of two
worker processes, and prints its throughput (input GB per second) next to
the in-memory kernel's on one chunk.
"""

from __future__ import annotations

import argparse
import os
import site
import time
from typing import ClassVar

import numpy as np

#: The directory holding ``asv_benches``.
_REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cluster(numba_threads: int | None = None):
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise NotImplementedError("fastnorm.dask needs dask and distributed") from exc
    env = {} if numba_threads is None else {"NUMBA_NUM_THREADS": str(numba_threads)}
    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=40,
        env=env,
    )
    client = Client(cluster)
    # Helpers of this module (``_touch``) reach the workers by reference: under
    # asv it is ``asv_benches.bench_dask``, which they import from the repository.
    client.run(site.addsitedir, _REPOSITORY)
    return cluster, client


def _random(shape, chunks, client):
    """A persisted float32 random array built on the workers."""
    import dask.array as da
    from distributed import wait

    x = da.random.default_rng(0).standard_normal(shape, chunks=chunks, dtype=np.float32)
    x = client.persist(x)
    wait(x)
    return x


def _touch(block):
    return np.full((1,) * block.ndim, block.nbytes, np.int64)


def _run(y, client) -> int:
    """Compute every block of y on the workers, return only their byte count.

    Each output block is released as soon as it is counted, and a rerun of
    the same graph recomputes it (nothing is held between runs).
    """
    touched = y.map_blocks(_touch, chunks=tuple((1,) * len(c) for c in y.chunks), dtype=np.int64)
    return int(client.compute(touched.sum(), sync=True))


class DaskInstanceNorm:
    """256 MiB float32 NCHW, normalized on two worker processes."""

    params: ClassVar = ["whole-slices", "tiles"]
    param_names: ClassVar = ["chunking"]
    timeout = 300
    number = 1
    repeat = 3
    shape = (4, 16, 1024, 1024)
    chunks: ClassVar = {"whole-slices": (1, 4, 1024, 1024), "tiles": (1, 16, 256, 256)}

    def setup(self, chunking):
        self.cluster, self.client = _cluster()
        self.x = _random(self.shape, self.chunks[chunking], self.client)
        self.dy = _random(self.shape, self.chunks[chunking], self.client)
        import fastnorm.dask as fd

        self.fd = fd
        _run(fd.instance_norm(self.x), self.client)  # JIT and imports on the workers

    def teardown(self, chunking):
        self.client.close()
        self.cluster.close()

    def time_forward(self, chunking):
        _run(self.fd.instance_norm(self.x, axis=1), self.client)

    def time_backward(self, chunking):
        _run(self.fd.instance_norm_backward(self.dy, self.x)[0], self.client)


# --------------------------------------------------------------------------
# one-off throughput measurement


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gib", type=float, default=4.0, help="array size in GiB")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--numba-threads", type=int, default=None, help="per worker")
    args = parser.parse_args(argv)

    import fastnorm
    import fastnorm.dask as fd

    N, C = 4, 16
    side = round((args.gib * 2**30 / 4 / N / C) ** 0.5 / 1024) * 1024
    shape = (N, C, side, side)
    layouts = {
        "whole slices (1, 4, H, W)": (1, 4, side, side),
        "tiles (1, 16, 1024, 1024)": (1, C, 1024, 1024),
    }
    nbytes = np.prod(shape) * 4
    print(f"x: {shape} float32, {nbytes / 2**30:.2f} GiB")

    cluster, client = _cluster(args.numba_threads)
    try:
        for label, chunks in layouts.items():
            x = _random(shape, chunks, client)
            chunk = np.random.default_rng(0).standard_normal(chunks, dtype=np.float32)
            fastnorm.instance_norm(chunk)  # JIT
            t_chunk = _best(lambda chunk=chunk: fastnorm.instance_norm(chunk), args.repeat)
            _run(fd.instance_norm(x), client)  # warm the workers
            _run(fd.instance_norm_backward(x, x)[0], client)
            t = _best(lambda x=x: _run(fd.instance_norm(x), client), args.repeat)
            tb = _best(lambda x=x: _run(fd.instance_norm_backward(x, x)[0], client), 1)
            print(
                f"{label}: {np.prod(x.numblocks)} chunks of {chunk.nbytes / 2**20:.0f} MiB\n"
                f"  cluster forward  {t:7.3f} s  {nbytes / t / 1e9:6.2f} GB/s\n"
                f"  cluster backward {tb:7.3f} s  {nbytes / tb / 1e9:6.2f} GB/s (3 passes)\n"
                f"  in-memory kernel on one chunk {t_chunk * 1e3:7.1f} ms  "
                f"{chunk.nbytes / t_chunk / 1e9:6.2f} GB/s"
            )
            del x
    finally:
        client.close()
        cluster.close()


if __name__ == "__main__":
    main()
