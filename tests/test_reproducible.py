"""Results do not depend on whether the kernels were compiled in this process
or loaded from Numba's on-disk cache.

A kernel compiled in the process runs its helpers as they were optimized on
their own; loaded from the cache, it runs the copies linked into it and
optimized again with it.  A reassociated reduction inside a loop over slices
came out vectorized differently the second time (dgamma of layer norm over a
middle axis differed by 1e-13, dx of short instance-norm slices by 3e-17),
so a service's results changed between its first and second start.  This
test runs the backward of each kernel family twice in fresh processes
sharing an empty cache directory (compiled, then loaded) and wants the same
bits.  Float64 and the serial kernels keep the compile short; the parallel
kernels call the same helpers.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

CODE = """
import sys
import numpy as np
import fastnorm

rng = np.random.default_rng(3)
out = {}
cases = [
    # short one-channel slices (rows family, grouped), long ones, NHWC columns
    ("group_norm", (2, 16, 32, 32), 1, 16),
    ("group_norm", (2, 4, 70, 70), 1, 2),
    ("group_norm", (2, 8, 8, 320), -1, 32),
    # layer norm: rows and a middle axis (column chunks)
    ("layer_norm", (64, 768), -1, None),
    ("layer_norm", (3, 200, 7, 9), 1, None),
]
for i, (op, shape, axis, groups) in enumerate(cases):
    x = 100.0 + 3.0 * rng.standard_normal(shape)
    dy = rng.standard_normal(shape)
    if op == "group_norm":
        gamma = rng.standard_normal(shape[axis])
        res = fastnorm.group_norm_backward(dy, x, groups, gamma, axis=axis)
        res += (fastnorm.group_norm(x, groups, gamma, gamma, axis=axis),)
    else:
        gamma = rng.standard_normal(shape[axis])
        res = fastnorm.layer_norm_backward(dy, x, gamma, axis=axis)
        res += (fastnorm.layer_norm(x, gamma, gamma, axis=axis),)
    for j, a in enumerate(res):
        out[f"{i}_{j}"] = a
np.savez(sys.argv[1], **out)
"""


@pytest.mark.slow
def test_compiled_and_cached_kernels_give_the_same_bits(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    runs = []
    for name in ("compiled", "cached"):
        path = tmp_path / f"{name}.npz"
        done = subprocess.run(
            [sys.executable, "-c", CODE, str(path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stderr
        runs.append(np.load(path))
    if not any((tmp_path / "cache").rglob("*.nbi")):
        pytest.skip("NUMBA_CACHE_DIR is not used here")
    compiled, cached = runs
    assert compiled.files == cached.files
    for key in compiled.files:
        np.testing.assert_array_equal(cached[key], compiled[key], err_msg=key)
