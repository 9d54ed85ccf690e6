"""Layer norm: transformer rows, ViT tokens and ConvNeXt's channels-first (issue 12).

See :mod:`asv_benches._common` for what each benchmark measures; the PyTorch
peer is ``F.layer_norm`` (for the channels-first case on the permuted tensor,
as the bench table notes).
"""

from fastnorm.bench import LAYER_SHAPES, Case, parse_cases

from ._common import _FloorRatio, _Times, _TorchRatio

SHAPES = tuple(LAYER_SHAPES)


class _LayerNorm:
    params = (SHAPES,)
    param_names = ("shape",)

    def make_case(self, shape) -> Case:
        (case,) = parse_cases(shape)
        return case


class LayerNorm(_LayerNorm, _Times):
    """Seconds per call, and peak memory of a forward with a fresh output."""


class LayerFloorRatio(_LayerNorm, _FloorRatio):
    """Time / floor-time, measured in the same process (1.0 = at the floor)."""


class LayerTorchRatio(_LayerNorm, _TorchRatio):
    """fastnorm time / PyTorch layer_norm time."""
