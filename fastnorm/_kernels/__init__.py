"""Numba kernels on the canonical views; no validation happens here.

Two layout families cover every channel axis without a transposed copy:

* :mod:`.rows` -- slices made of contiguous rows (NCHW, NCDHW, a channel
  axis in the middle with long rows);
* :mod:`.columns` -- channels (and short rows) innermost (NHWC, NDHWC);
* :mod:`.affine` -- an affine that varies inside a slice (layer norm), on
  contiguous rows or on the columns of a middle axis, with the statistics
  of the two families above.

:mod:`.table` defines the per-slice ``stats`` table they share.

Each family has ``*_forward``, ``*_backward``, ``*_moments`` (statistics
only) and ``*_grad_sums`` (used by the Dask integration), each a parallel
kernel with a ``*_serial`` twin compiled from the same body: the same parts
merged in the same order, so the same bits.
"""

from .affine import (
    affine_columns_backward,
    affine_columns_backward_serial,
    affine_columns_forward,
    affine_columns_forward_serial,
    affine_rows_backward,
    affine_rows_backward_serial,
    affine_rows_forward,
    affine_rows_forward_serial,
)
from .columns import (
    columns_backward,
    columns_backward_serial,
    columns_forward,
    columns_forward_serial,
    columns_grad_sums,
    columns_grad_sums_serial,
    columns_moments,
    columns_moments_serial,
)
from .rows import (
    rows_backward,
    rows_backward_serial,
    rows_forward,
    rows_forward_serial,
    rows_grad_sums,
    rows_grad_sums_serial,
    rows_moments,
    rows_moments_serial,
)
from .table import (
    COUNT,
    INVSTD,
    M2,
    MEAN,
    STATS_COLUMNS,
    SUM_DY,
    SUM_DYXC,
    channel_gradients,
    fill_given_stats,
)

__all__ = [
    "COUNT",
    "INVSTD",
    "M2",
    "MEAN",
    "STATS_COLUMNS",
    "SUM_DY",
    "SUM_DYXC",
    "affine_columns_backward",
    "affine_columns_backward_serial",
    "affine_columns_forward",
    "affine_columns_forward_serial",
    "affine_rows_backward",
    "affine_rows_backward_serial",
    "affine_rows_forward",
    "affine_rows_forward_serial",
    "channel_gradients",
    "columns_backward",
    "columns_backward_serial",
    "columns_forward",
    "columns_forward_serial",
    "columns_grad_sums",
    "columns_grad_sums_serial",
    "columns_moments",
    "columns_moments_serial",
    "fill_given_stats",
    "rows_backward",
    "rows_backward_serial",
    "rows_forward",
    "rows_forward_serial",
    "rows_grad_sums",
    "rows_grad_sums_serial",
    "rows_moments",
    "rows_moments_serial",
]
