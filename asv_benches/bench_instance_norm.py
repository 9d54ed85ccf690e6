"""Instance norm: forward and backward over shape x dtype x layout, and against PyTorch.

See :mod:`asv_benches._common` for what each benchmark measures.
"""

import numpy as np

from fastnorm.bench import Case

from ._common import _FloorRatio, _Times, _TorchRatio

#: NCHW shapes of issue 4: C (small, serial kernel), B (16 MiB in float32)
#: and G (16384 slices of 64 elements, where per-slice costs show).
SHAPES = ("1x16x32x32", "8x32x128x128", "64x256x8x8")
DTYPES = ("float32", "float64")
LAYOUTS = ("NCHW", "NHWC")
#: PyTorch paths for instance norm: its instance_norm, and group_norm with one
#: group per channel (faster on CPU), by the bench's library names.
PEERS = {"instance_norm": "torch", "group_norm": "torch-gn"}


def make_case(shape: str, dtype: str, layout: str) -> Case:
    """The case of an NCHW shape text in the given layout (NHWC: axis=-1)."""
    n, c, *spatial = (int(d) for d in shape.split("x"))
    if layout == "NCHW":
        return Case(shape, (n, c, *spatial), 1, np.dtype(dtype))
    return Case(shape, (n, *spatial, c), -1, np.dtype(dtype))


class _InstanceNorm:
    params = (SHAPES, DTYPES, LAYOUTS)
    param_names = ("shape", "dtype", "layout")

    def make_case(self, shape, dtype, layout, *peer):
        return make_case(shape, dtype, layout)


class InstanceNorm(_InstanceNorm, _Times):
    """Seconds per call, and peak memory of a forward with a fresh output."""


class FloorRatio(_InstanceNorm, _FloorRatio):
    """Time / floor-time, measured in the same process (1.0 = at the floor)."""


class TorchRatio(_InstanceNorm, _TorchRatio):
    """fastnorm time / PyTorch instance_norm or group_norm(num_groups=C) time."""

    params = (SHAPES, ("float32",), LAYOUTS, tuple(PEERS))
    param_names = ("shape", "dtype", "layout", "peer")

    def peer(self, shape, dtype, layout, peer):
        return PEERS[peer]


#: Slices of at most 4 elements (issue 10's tiny-slice targets), NCHW only.
TINY_SHAPES = ("64x512x2x2", "4096x64x4")


class TinySliceRatio(_InstanceNorm, _FloorRatio):
    """Time / floor-time on slices of 4 elements (run across slices)."""

    params = (TINY_SHAPES, ("float32",), ("NCHW",))


class PreparedCall:
    """Seconds per call of C (1, 16, 32, 32) float32: the checked function, a
    prepared call (fastnorm.prepare) and the InstanceNorm layer, all into out=."""

    def setup(self):
        import fastnorm

        rng = np.random.default_rng(0)
        self.x = rng.standard_normal((1, 16, 32, 32), dtype=np.float32)
        self.gamma = rng.standard_normal(16, dtype=np.float32)
        self.beta = rng.standard_normal(16, dtype=np.float32)
        self.out = np.empty_like(self.x)
        self.function = fastnorm.instance_norm
        self.plan = fastnorm.prepare(self.x.shape)
        self.layer = fastnorm.InstanceNorm(in_channels=16)
        self.layer.initialize()
        self.time_function()
        self.time_prepared()
        self.time_layer()

    def time_function(self):
        self.function(self.x, self.gamma, self.beta, out=self.out)

    def time_prepared(self):
        self.plan(self.x, self.gamma, self.beta, out=self.out)

    def time_layer(self):
        self.layer(self.x, out=self.out)
