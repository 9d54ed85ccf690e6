"""Instance, group and layer normalization of Dask arrays with fastnorm's kernels.

Import it as ``fastnorm.dask`` (``pip install "fastnorm[dask]"``); plain
``import fastnorm`` never imports Dask.

Every slice is normalized exactly as the in-memory function does, whatever
the chunking:

* when each block holds whole slices (instance/group norm: the axes other
  than samples and channels are unchunked; layer norm: the normalized axes
  are unchunked), the forward is one task per block running the in-memory
  kernel;
* otherwise each chunk yields its partial moments (count, mean, M2) from
  fastnorm's blocked-Welford kernels, Dask's tree reduction merges them with
  Chan's formula in float64 (as ``dask.array.var`` does), and a second
  blockwise pass applies the merged statistics.

Chunked samples and channels are fine either way: statistics stay per block
along those axes, and gamma/beta are rechunked to the chunks of x.  Group
norm needs whole groups per channel chunk and rechunks the channel axis
when a chunk boundary splits a group; the layer-norm backward rechunks the
normalized axes to one chunk when they are chunked.

Modules: ``_common`` (validation, the moments reduction, multi-output
tasks), ``_groups`` (instance and group norm, one implementation),
``_layer`` (layer norm).
"""

from __future__ import annotations

from ._common import MOMENTS
from ._groups import group_norm, group_norm_backward, instance_norm, instance_norm_backward
from ._layer import layer_norm, layer_norm_backward

__all__ = [
    "MOMENTS",
    "group_norm",
    "group_norm_backward",
    "instance_norm",
    "instance_norm_backward",
    "layer_norm",
    "layer_norm_backward",
]
