"""Shared machinery of the asv suites of the three ops (not a benchmark module).

Every suite builds a :class:`fastnorm.bench.Case` from its parameters and calls
fastnorm and the PyTorch peer exactly as ``python -m fastnorm.bench`` does
(:mod:`fastnorm.bench.peers`), so asv tracks the figures of the bench table:

- ``time_forward`` (into ``out=``), ``time_backward`` (dx into ``out=``,
  recomputing the statistics), ``peakmem_forward_fresh``;
- ``track_forward_ratio`` / ``track_backward_ratio`` /
  ``track_backward_saved_ratio``: time / ``np.copyto(out, x)`` and time /
  ``np.add(dy, x, out=dx)`` (the backward recomputing the statistics, or with
  the forward's saved statistics as autograd does), medians of interleaved
  rounds in the same process;
- ``track_forward_vs_parallel_floor`` / ``track_backward_saved_vs_parallel_floor``:
  the same against the copy and add split between fastnorm's threads
  (:mod:`fastnorm.bench.floors`), what those cores can move;
- ``track_forward_vs_torch`` / ``track_backward_vs_torch``: fastnorm's time /
  PyTorch's (forward into ``out=`` vs PyTorch's forward, backward with saved
  statistics vs autograd), lower is better; skipped without PyTorch.

The JIT is warmed in ``setup`` so compilation is never timed.  Classes here
start with an underscore so that asv collects them only through the suites
that derive from them.
"""

from __future__ import annotations

import numpy as np

import fastnorm
from fastnorm.bench import LIBRARIES, Case, interleave, lead_args, make_inputs, median_ratio
from fastnorm.bench.floors import parallel_floor_calls
from fastnorm.bench.ops import fastnorm_functions

#: Interleaved rounds of the ratio benchmarks.
ROUNDS = 15


class _Norm:
    """One case of one op; subclasses define ``params`` and :meth:`make_case`."""

    timeout = 300  # a cold Numba cache compiles in setup

    def make_case(self, *params) -> Case:
        raise NotImplementedError  # each suite maps its parameters to a Case

    def setup(self, *params):
        self.case = case = self.make_case(*params)
        self.inp = make_inputs(case)
        self.out = np.empty_like(self.inp.x)
        self.floor_out = np.empty_like(self.inp.x)
        self.parallel_floor = parallel_floor_calls(
            self.inp.x, self.inp.dy, self.floor_out, fastnorm.get_num_threads()
        )
        self.lead = lead_args(case)
        self.norm, stats, self.norm_backward = fastnorm_functions(case)
        self.saved = stats(self.inp.x, *self.lead, axis=case.axis)
        self.forward()
        self.backward()
        self.backward_saved()

    def forward(self):
        inp = self.inp
        return self.norm(inp.x, *self.lead, inp.gamma, inp.beta, axis=self.case.axis, out=self.out)

    def forward_fresh(self):
        inp = self.inp
        return self.norm(inp.x, *self.lead, inp.gamma, inp.beta, axis=self.case.axis)

    def backward(self):
        inp = self.inp
        return self.norm_backward(
            inp.dy, inp.x, *self.lead, inp.gamma, axis=self.case.axis, out=self.out
        )

    def backward_saved(self):
        inp = self.inp
        mean, invstd = self.saved
        return self.norm_backward(
            inp.dy,
            inp.x,
            *self.lead,
            inp.gamma,
            axis=self.case.axis,
            mean=mean,
            invstd=invstd,
            out=self.out,
        )

    def floor_forward(self):
        np.copyto(self.floor_out, self.inp.x)

    def floor_backward(self):
        np.add(self.inp.dy, self.inp.x, out=self.floor_out)

    @staticmethod
    def ratio(ours, theirs) -> float:
        """Median over interleaved rounds of (ours / theirs) within the round."""
        times = interleave({"ours": ours, "theirs": theirs}, ROUNDS)
        return median_ratio(times["ours"], times["theirs"])


class _Times(_Norm):
    """Seconds per call, and peak memory of a forward with a fresh output."""

    def time_forward(self, *params):
        self.forward()

    def time_backward(self, *params):
        self.backward()

    def peakmem_forward_fresh(self, *params):
        self.forward_fresh()


class _FloorRatio(_Norm):
    """Time / floor-time, measured in the same process (1.0 = at the floor)."""

    def track_forward_ratio(self, *params):
        return self.ratio(self.forward, self.floor_forward)

    track_forward_ratio.unit = "x np.copyto"

    def track_backward_ratio(self, *params):
        return self.ratio(self.backward, self.floor_backward)

    track_backward_ratio.unit = "x np.add"

    def track_backward_saved_ratio(self, *params):
        return self.ratio(self.backward_saved, self.floor_backward)

    track_backward_saved_ratio.unit = "x np.add"

    def track_forward_vs_parallel_floor(self, *params):
        return self.ratio(self.forward, self.parallel_floor[0])

    track_forward_vs_parallel_floor.unit = "x parallel copy"

    def track_backward_saved_vs_parallel_floor(self, *params):
        return self.ratio(self.backward_saved, self.parallel_floor[1])

    track_backward_saved_vs_parallel_floor.unit = "x parallel add"


class _TorchRatio(_Norm):
    """fastnorm time / PyTorch time on the same case (below 1: fastnorm is faster).

    ``peer`` names the library of :data:`fastnorm.bench.LIBRARIES` compared
    with: 'torch' (PyTorch's function of the op) or 'torch-gn' (instance norm
    as group_norm with one group per channel).
    """

    def peer(self, *params) -> str:
        return "torch"

    def setup(self, *params):
        try:
            import torch  # noqa: F401
        except ImportError as exc:
            raise NotImplementedError("PyTorch is not installed") from exc
        super().setup(*params)
        import numba

        (library,) = (lib for lib in LIBRARIES if lib.name == self.peer(*params))
        self.torch = library.prepare(self.case, self.inp, numba.get_num_threads())
        self.torch.fresh()
        self.torch.backward()

    def track_forward_vs_torch(self, *params):
        return self.ratio(self.forward, self.torch.fresh)

    track_forward_vs_torch.unit = "x torch"

    def track_backward_vs_torch(self, *params):
        return self.ratio(self.backward_saved, self.torch.backward)

    track_backward_vs_torch.unit = "x torch"
