"""Drop-in modules: subclasses of the torch.nn norm layers that run fastnorm.

Each keeps its parent's constructor, parameters, buffers, ``state_dict``
keys, input checks and ``extra_repr``; only the normalization itself runs
through fastnorm's operators.  A state_dict saved from a torch module loads
into the fastnorm one and back.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import functional as _F

__all__ = ["GroupNorm", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "LayerNorm"]


class _InstanceNormMixin:
    """fastnorm's ``_apply_instance_norm`` for the ``_InstanceNorm`` subclasses.

    ``torch.nn.modules.instancenorm._InstanceNorm.forward`` checks the input
    (dimensions, num_features, unbatched inputs) and then calls this method,
    so overriding it alone keeps every one of PyTorch's checks and messages.
    """

    def _apply_instance_norm(self, input: Tensor) -> Tensor:
        use_input_stats = self.training or not self.track_running_stats
        momentum = self.momentum if self.momentum is not None else 0.0
        if use_input_stats and not self.track_running_stats:
            return _F.instance_norm(input, self.weight, self.bias, self.eps)
        # PyTorch updates the running statistics only in training, and
        # normalizes with them in eval.
        return _F.instance_norm(
            input,
            self.weight,
            self.bias,
            self.eps,
            running_mean=self.running_mean,
            running_var=self.running_var,
            use_input_stats=use_input_stats,
            momentum=momentum,
        )


class InstanceNorm1d(_InstanceNormMixin, torch.nn.InstanceNorm1d):
    """``torch.nn.InstanceNorm1d`` computed by fastnorm: (N, C, L) or (C, L)."""


class InstanceNorm2d(_InstanceNormMixin, torch.nn.InstanceNorm2d):
    """``torch.nn.InstanceNorm2d`` computed by fastnorm: (N, C, H, W) or (C, H, W).

    channels_last inputs give channels_last outputs without a copy.
    """


class InstanceNorm3d(_InstanceNormMixin, torch.nn.InstanceNorm3d):
    """``torch.nn.InstanceNorm3d`` computed by fastnorm: (N, C, D, H, W) or (C, D, H, W).

    channels_last_3d inputs give channels_last_3d outputs without a copy.
    """


class GroupNorm(torch.nn.GroupNorm):
    """``torch.nn.GroupNorm`` computed by fastnorm: (N, C, *).

    channels_last inputs give channels_last outputs without a copy.
    """

    def forward(self, input: Tensor) -> Tensor:
        return _F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)


class LayerNorm(torch.nn.LayerNorm):
    """``torch.nn.LayerNorm`` computed by fastnorm: (*, *normalized_shape)."""

    def forward(self, input: Tensor) -> Tensor:
        return _F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)
