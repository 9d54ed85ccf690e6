"""Forward and backward of instance norm, over shape x dtype x layout.

The JIT is warmed in ``setup`` so compilation is never timed.  The ``track_``
benchmarks report the distance to the memory-bandwidth floor measured in the
same process: forward time / ``np.copyto(out, x)`` and backward time /
``np.add(dy, x, out=dx)``, medians of interleaved rounds.
"""

import numpy as np

import fastnorm
from fastnorm.bench import Case, interleave, make_inputs, median_ratio

#: NCHW shapes of issue 4: C (small, serial kernel), B (16 MiB in float32)
#: and G (16384 slices of 64 elements, where per-slice costs show).
SHAPES = ("1x16x32x32", "8x32x128x128", "64x256x8x8")
DTYPES = ("float32", "float64")
LAYOUTS = ("NCHW", "NHWC")
#: Interleaved rounds of the ratio benchmarks.
ROUNDS = 15


def make_case(shape: str, dtype: str, layout: str) -> Case:
    """The case of an NCHW shape text in the given layout (NHWC: axis=-1)."""
    n, c, *spatial = (int(d) for d in shape.split("x"))
    if layout == "NCHW":
        return Case(shape, (n, c, *spatial), 1, np.dtype(dtype))
    return Case(shape, (n, *spatial, c), -1, np.dtype(dtype))


class _InstanceNorm:
    params = (SHAPES, DTYPES, LAYOUTS)
    param_names = ("shape", "dtype", "layout")
    timeout = 300  # a cold Numba cache compiles in setup

    def setup(self, shape, dtype, layout):
        case = make_case(shape, dtype, layout)
        self.axis = case.axis
        self.inp = make_inputs(case)
        self.out = np.empty_like(self.inp.x)
        self.forward()
        self.backward()

    def forward(self):
        inp = self.inp
        return fastnorm.instance_norm(inp.x, inp.gamma, inp.beta, axis=self.axis, out=self.out)

    def forward_fresh(self):
        inp = self.inp
        return fastnorm.instance_norm(inp.x, inp.gamma, inp.beta, axis=self.axis)

    def backward(self):
        inp = self.inp
        return fastnorm.instance_norm_backward(
            inp.dy, inp.x, inp.gamma, axis=self.axis, out=self.out
        )


class InstanceNorm(_InstanceNorm):
    """Seconds per call, and peak memory of a forward with a fresh output."""

    def time_forward(self, shape, dtype, layout):
        self.forward()

    def time_backward(self, shape, dtype, layout):
        self.backward()

    def peakmem_forward_fresh(self, shape, dtype, layout):
        self.forward_fresh()


class FloorRatio(_InstanceNorm):
    """Time / floor-time, measured in the same process (1.0 = at the floor)."""

    def floor_forward(self):
        np.copyto(self.out, self.inp.x)

    def floor_backward(self):
        np.add(self.inp.dy, self.inp.x, out=self.out)

    def _ratio(self, ours, floor):
        times = interleave({"ours": ours, "floor": floor}, ROUNDS)
        return median_ratio(times["ours"], times["floor"])

    def track_forward_ratio(self, shape, dtype, layout):
        return self._ratio(self.forward, self.floor_forward)

    track_forward_ratio.unit = "x np.copyto"

    def track_backward_ratio(self, shape, dtype, layout):
        return self._ratio(self.backward, self.floor_backward)

    track_backward_ratio.unit = "x np.add"
