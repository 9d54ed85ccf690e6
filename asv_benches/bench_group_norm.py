"""Group norm, 32 groups: diffusion U-Net and ResNet-GN shapes, NCHW and NHWC (issue 11).

See :mod:`asv_benches._common` for what each benchmark measures; the PyTorch
peer is ``F.group_norm`` (channels_last memory for NHWC).
"""

from fastnorm.bench import GROUP_SHAPES, Case, parse_cases

from ._common import _FloorRatio, _Times, _TorchRatio

SHAPES = tuple(GROUP_SHAPES)
LAYOUTS = ("NCHW", "NHWC")


class _GroupNorm:
    params = (SHAPES, LAYOUTS)
    param_names = ("shape", "layout")

    def make_case(self, shape, layout) -> Case:
        (case,) = parse_cases(shape if layout == "NCHW" else f"{shape}:-1")
        return case


class GroupNorm(_GroupNorm, _Times):
    """Seconds per call, and peak memory of a forward with a fresh output."""


class GroupFloorRatio(_GroupNorm, _FloorRatio):
    """Time / floor-time, measured in the same process (1.0 = at the floor)."""


class GroupTorchRatio(_GroupNorm, _TorchRatio):
    """fastnorm time / PyTorch group_norm time."""
