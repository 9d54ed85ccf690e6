"""Whole-model benchmark: PyTorch's norm layers against ``fastnorm.torch.convert()``.

``python -m fastnorm.bench --models`` (or ``python -m fastnorm.bench.models``)
times CPU inference and one training step (forward, loss, backward) of four
architectures built from their published descriptions with random weights
(nothing is downloaded), each in NCHW and channels-last, once with PyTorch's
own norm modules and once with a :func:`fastnorm.torch.convert`-ed deep copy
of the same model; it prints each speedup and the largest difference of the
outputs (and, for training, of the parameter gradients).

Models (``--models`` names):

* ``transformernet`` -- fast-neural-style TransformerNet (Johnson et al.
  2016, as in pytorch/examples): 9x9 and two strided 3x3 convolutions, five
  residual blocks, two upsampling convolutions, a 9x9 output convolution;
  reflection padding; 15 affine ``InstanceNorm2d``; (1, 3, 512, 512).
* ``cyclegan`` -- CycleGAN's ResNet-9-block generator (Zhu et al. 2017,
  junyanz/pytorch-CycleGAN-and-pix2pix ``ResnetGenerator``, ngf=64):
  ``InstanceNorm2d`` without affine parameters; (1, 3, 256, 256).
* ``unet3d`` -- an nnU-Net-style 3D encoder (Isensee et al. 2021): stages of
  two (Conv3d 3x3x3, affine ``InstanceNorm3d``, LeakyReLU 0.01) blocks, the
  second stage strided; (1, 32, 64, 64, 64).
* ``diffusion`` -- two Stable-Diffusion U-Net ResBlocks (Rombach et al.
  2022; ``GroupNorm(32, 320)``, SiLU, 3x3 convolutions, a time-embedding
  projection, a residual); (1, 320, 64, 64).

Timing: the torch and fastnorm variants run in interleaved rounds and the
medians are reported, because a shared machine drifts; thread counts are
PyTorch's (fastnorm follows them).  The training step's input requires
grad: with a channels-last input that does not, PyTorch 2.13's own
GroupNorm backward dies with SIGSEGV (``GroupNorm(2, 8)`` on a (2, 8, 4, 4)
channels_last tensor is enough), while fastnorm's is fine.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence

__all__ = ["MODELS", "build_model", "main", "run_models"]

#: name -> (input shape, quick input shape, description)
MODELS = {
    "transformernet": ((1, 3, 512, 512), (1, 3, 32, 32), "TransformerNet (fast-neural-style)"),
    "cyclegan": ((1, 3, 256, 256), (1, 3, 32, 32), "CycleGAN ResNet-9 generator"),
    "unet3d": ((1, 32, 64, 64, 64), (1, 32, 8, 8, 8), "nnU-Net 3D encoder stages"),
    "diffusion": ((1, 320, 64, 64), (1, 320, 8, 8), "diffusion U-Net ResBlocks, GroupNorm(32)"),
}
FORMATS = ("nchw", "channels_last")
MODES = ("inference", "training")


# --------------------------------------------------------------------------
# architectures (torch is imported only when a model is built)


def _transformernet(nn):
    class ConvLayer(nn.Sequential):
        def __init__(self, cin, cout, k, stride):
            super().__init__(nn.ReflectionPad2d(k // 2), nn.Conv2d(cin, cout, k, stride))

    class UpsampleConvLayer(nn.Module):
        def __init__(self, cin, cout, k, upsample):
            super().__init__()
            self.upsample = upsample
            self.conv = ConvLayer(cin, cout, k, 1)

        def forward(self, x):
            x = nn.functional.interpolate(x, mode="nearest", scale_factor=self.upsample)
            return self.conv(x)

    class ResidualBlock(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv1, self.in1 = ConvLayer(c, c, 3, 1), nn.InstanceNorm2d(c, affine=True)
            self.conv2, self.in2 = ConvLayer(c, c, 3, 1), nn.InstanceNorm2d(c, affine=True)
            self.relu = nn.ReLU()

        def forward(self, x):
            return x + self.in2(self.conv2(self.relu(self.in1(self.conv1(x)))))

    def block(layer, c):
        return [layer, nn.InstanceNorm2d(c, affine=True), nn.ReLU()]

    return nn.Sequential(
        *block(ConvLayer(3, 32, 9, 1), 32),
        *block(ConvLayer(32, 64, 3, 2), 64),
        *block(ConvLayer(64, 128, 3, 2), 128),
        *[ResidualBlock(128) for _ in range(5)],
        *block(UpsampleConvLayer(128, 64, 3, 2), 64),
        *block(UpsampleConvLayer(64, 32, 3, 2), 32),
        ConvLayer(32, 3, 9, 1),
    )


def _cyclegan(nn, ngf=64, blocks=9):
    def norm(c):
        return nn.InstanceNorm2d(c, affine=False, track_running_stats=False)

    class ResnetBlock(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv_block = nn.Sequential(
                nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), norm(c), nn.ReLU(True),
                nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), norm(c),
            )  # fmt: skip

        def forward(self, x):
            return x + self.conv_block(x)

    layers = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), norm(ngf), nn.ReLU(True)]
    for i in range(2):
        c = ngf * 2**i
        layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), norm(2 * c), nn.ReLU(True)]
    layers += [ResnetBlock(ngf * 4) for _ in range(blocks)]
    for i in range(2):
        c = ngf * 2 ** (2 - i)
        layers += [
            nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1),
            norm(c // 2),
            nn.ReLU(True),
        ]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
    return nn.Sequential(*layers)


def _unet3d(nn, c0=32):
    def conv_block(cin, cout, stride):
        return [
            nn.Conv3d(cin, cout, 3, stride=stride, padding=1),
            nn.InstanceNorm3d(cout, eps=1e-5, affine=True),
            nn.LeakyReLU(0.01, inplace=True),
        ]

    return nn.Sequential(
        *conv_block(c0, c0, 1), *conv_block(c0, c0, 1),  # stage 1, full resolution
        *conv_block(c0, 2 * c0, 2), *conv_block(2 * c0, 2 * c0, 1),  # stage 2
    )  # fmt: skip


def _diffusion(nn, channels=320, temb_channels=1280, blocks=2):
    import torch

    class ResBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm1 = nn.GroupNorm(32, channels, eps=1e-5)
            self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
            self.time_emb_proj = nn.Linear(temb_channels, channels)
            self.norm2 = nn.GroupNorm(32, channels, eps=1e-5)
            self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
            self.act = nn.SiLU()

        def forward(self, x, temb):
            h = self.conv1(self.act(self.norm1(x)))
            h = h + self.time_emb_proj(self.act(temb))[:, :, None, None]
            return x + self.conv2(self.act(self.norm2(h)))

    class Stack(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList(ResBlock() for _ in range(blocks))
            gen = torch.Generator().manual_seed(1)
            self.register_buffer("temb", torch.randn(1, temb_channels, generator=gen))

        def forward(self, x):
            for block in self.blocks:
                x = block(x, self.temb)
            return x

    return Stack()


_BUILDERS = {
    "transformernet": _transformernet,
    "cyclegan": _cyclegan,
    "unet3d": _unet3d,
    "diffusion": _diffusion,
}


def build_model(name: str, seed: int = 0):
    """One of :data:`MODELS` with PyTorch's norm layers and seeded random weights.

    Norm layers get random affine parameters too (they start as ones and
    zeros), so a difference in their gradients would show.
    """
    import torch

    if name not in _BUILDERS:
        raise ValueError(f"model must be one of {sorted(_BUILDERS)}, got {name!r}")
    torch.manual_seed(seed)
    model = _BUILDERS[name](torch.nn)
    with torch.no_grad():
        for module in model.modules():
            norm = (torch.nn.GroupNorm, torch.nn.modules.instancenorm._InstanceNorm)
            if isinstance(module, norm) and module.weight is not None:
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    return model


# --------------------------------------------------------------------------
# timing


def _memory_format(torch, ndim: int, fmt: str):
    if fmt == "nchw":
        return torch.contiguous_format
    return torch.channels_last if ndim == 4 else torch.channels_last_3d


def _step(torch, model, x, mode: str) -> Callable:
    """A callable running one inference or one training step; returns its output."""
    if mode == "inference":

        def infer():
            with torch.inference_mode():
                return model(x)

        return infer

    def train():
        model.zero_grad(set_to_none=True)
        y = model(x)
        y.square().mean().backward()
        return y.detach()

    return train


def _timed(fns: dict, rounds: int) -> dict:
    """Median seconds of each callable over interleaved rounds (one warm-up call each)."""
    for fn in fns.values():
        fn()
    samples: dict = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in samples.items()}


def _max_rel(a, b) -> float:
    scale = max(float(b.abs().max()), 1e-30)
    return float((a.float() - b.float()).abs().max()) / scale


def _grad_diff(reference, model) -> float:
    """Largest parameter-gradient difference, relative to the largest gradient.

    One scale for all parameters: the gradients of a convolution bias
    followed by an instance norm are exactly zero in exact arithmetic, and
    their rounding noise is no error.
    """
    pairs = [
        (p1.grad, p2.grad)
        for p1, p2 in zip(reference.parameters(), model.parameters(), strict=True)
        if p1.grad is not None and p2.grad is not None
    ]
    if not pairs:
        return 0.0
    scale = max(max(float(g1.abs().max()) for g1, _ in pairs), 1e-30)
    return max(float((g2.float() - g1.float()).abs().max()) for g1, g2 in pairs) / scale


def run_one(name: str, fmt: str, mode: str, *, quick: bool = False, rounds: int = 3) -> dict:
    """Time one (model, memory format, mode) pair: torch modules vs convert().

    Returns
    -------
    dict
        model, format, mode, shape, torch_ms, fastnorm_ms, speedup
        (torch / fastnorm), max_diff (largest output difference relative to
        the output's largest magnitude), same_strides (the outputs' memory
        formats agree) and, for training, grad_diff.
    """
    import torch

    import fastnorm.torch as ft

    shape = MODELS[name][1 if quick else 0]
    reference = build_model(name)
    converted = ft.convert(copy.deepcopy(reference))
    memory_format = _memory_format(torch, len(shape), fmt)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(shape, generator=gen).contiguous(memory_format=memory_format)
    # The training step also computes the input's gradient: PyTorch 2.13's
    # GroupNorm backward crashes (SIGSEGV) on a channels-last input that does
    # not require grad while its weight does.
    x.requires_grad_(mode == "training")
    for model in (reference, converted):
        model.to(memory_format=memory_format).train(mode == "training")
    fns = {"torch": _step(torch, reference, x, mode), "fastnorm": _step(torch, converted, x, mode)}
    times = _timed(fns, rounds)
    y_ref, y_fast = fns["torch"](), fns["fastnorm"]()
    result = {
        "model": name,
        "format": fmt,
        "mode": mode,
        "shape": list(shape),
        "torch_ms": times["torch"] * 1e3,
        "fastnorm_ms": times["fastnorm"] * 1e3,
        "speedup": times["torch"] / times["fastnorm"],
        "max_diff": _max_rel(y_fast, y_ref),
        "same_strides": y_fast.stride() == y_ref.stride(),
    }
    if mode == "training":
        result["grad_diff"] = _grad_diff(reference, converted)
    return result


def _machine() -> dict:
    import torch

    import fastnorm

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "fastnorm_threading_layer": fastnorm.threading_layer(),
    }


def run_models(
    models: Sequence[str] | None = None,
    formats: Sequence[str] = FORMATS,
    modes: Sequence[str] = MODES,
    *,
    quick: bool = False,
    rounds: int | None = None,
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Run the model benchmark and return its results.

    Parameters
    ----------
    models : sequence of str, optional
        Names from :data:`MODELS` (default: all).
    formats : sequence of str
        ``'nchw'`` and/or ``'channels_last'``.
    modes : sequence of str
        ``'inference'`` and/or ``'training'``.
    quick : bool
        Small inputs and one round: a smoke test of every path.
    rounds : int, optional
        Interleaved timing rounds (default 5; quick 1).
    threads : int, optional
        ``torch.set_num_threads`` for the run (fastnorm follows it).
    progress : callable, optional
        Receives a line per measurement.

    Returns
    -------
    dict
        ``machine`` (CPU, threads, versions) and ``results``, a list of
        :func:`run_one` dicts.
    """
    import torch

    models = list(MODELS) if models is None else list(models)
    for label, values, allowed in (
        ("models", models, MODELS),
        ("formats", formats, FORMATS),
        ("modes", modes, MODES),
    ):
        bad = [v for v in values if v not in allowed]
        if bad:
            raise ValueError(f"{label} must be among {list(allowed)}, got {bad}")
    rounds = (1 if quick else 5) if rounds is None else rounds
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        report = {"machine": _machine(), "quick": quick, "rounds": rounds, "results": []}
        for name in models:
            for fmt in formats:
                for mode in modes:
                    result = run_one(name, fmt, mode, quick=quick, rounds=rounds)
                    report["results"].append(result)
                    if progress is not None:
                        progress(_row(result))
    finally:
        torch.set_num_threads(before)
    return report


# --------------------------------------------------------------------------
# output


def _row(r: dict) -> str:
    diff = f"{r['max_diff']:.1e}"
    if "grad_diff" in r:
        diff += f" / {r['grad_diff']:.1e}"
    return (
        f"{r['model']:<15} {r['format']:<14} {r['mode']:<10} "
        f"{r['torch_ms']:>10.1f} {r['fastnorm_ms']:>10.1f} {r['speedup']:>7.2f}x  {diff}"
    )


def render(report: dict) -> str:
    """The results as a text table (times in ms, medians)."""
    m = report["machine"]
    lines = [
        f"CPU: {m['cpu']} ({m['cpus']} logical CPUs), torch {m['torch']} with "
        f"{m['torch_threads']} threads, fastnorm on {m['fastnorm_threading_layer']}; "
        f"median of {report['rounds']} interleaved rounds"
        + (" (quick)" if report["quick"] else ""),
        f"{'model':<15} {'format':<14} {'mode':<10} {'torch ms':>10} {'fastnorm':>10} "
        f"{'speedup':>8}  max diff (out / grads, relative)",
    ]
    lines += [_row(r) for r in report["results"]]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fastnorm.bench.models",
        description="Whole-model CPU inference and training step: torch norm layers "
        "vs fastnorm.torch.convert()",
    )
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated names")
    parser.add_argument("--formats", default=",".join(FORMATS), help="nchw,channels_last")
    parser.add_argument("--modes", default=",".join(MODES), help="inference,training")
    parser.add_argument("--rounds", type=int, default=None, help="timing rounds (default 5)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--quick", action="store_true", help="small inputs, one round")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    return parser


def _split(value) -> list:
    if value is None:
        return None
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return list(value)


def main(argv=None) -> int:
    """Command line: ``argv`` is a list of arguments or an ``argparse.Namespace``.

    A Namespace (from ``python -m fastnorm.bench --models``) may carry
    ``quick``, ``threads``, ``json`` and ``repeat``/``rounds``; a models
    list given to ``--models`` as a string is honoured.  Returns the exit
    status.
    """
    try:
        import torch  # noqa: F401
    except ImportError:
        print("the model benchmark needs PyTorch: pip install torch==2.13.0", file=sys.stderr)
        return 2
    if isinstance(argv, argparse.Namespace):
        ns = argv
        models = getattr(ns, "models", None)
        args = argparse.Namespace(
            models=models if isinstance(models, str) else ",".join(MODELS),
            formats=getattr(ns, "formats", None) or ",".join(FORMATS),
            modes=getattr(ns, "modes", None) or ",".join(MODES),
            rounds=getattr(ns, "rounds", None) or getattr(ns, "repeat", None),
            threads=getattr(ns, "threads", None),
            quick=bool(getattr(ns, "quick", False)),
            json=getattr(ns, "json", None),
        )
    else:
        args = build_parser().parse_args(argv)
    try:
        report = run_models(
            _split(args.models),
            _split(args.formats),
            _split(args.modes),
            quick=args.quick,
            rounds=args.rounds,
            threads=args.threads,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(render(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
