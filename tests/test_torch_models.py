"""The whole-model benchmark (fastnorm.bench.models) in its quick mode."""

from __future__ import annotations

import argparse
import json

import pytest

torch = pytest.importorskip("torch")

from fastnorm.bench import models as M  # noqa: E402

# norm layers of each published architecture
NORMS = {
    "transformernet": (torch.nn.InstanceNorm2d, 15),  # 3 + 5 residual blocks x 2 + 2
    "cyclegan": (torch.nn.InstanceNorm2d, 3 + 2 * 9 + 2),
    "unet3d": (torch.nn.InstanceNorm3d, 4),
    "diffusion": (torch.nn.GroupNorm, 4),
}


@pytest.mark.parametrize("name", list(M.MODELS))
def test_architectures_have_their_norm_layers(name):
    model = M.build_model(name)
    kind, count = NORMS[name]
    assert sum(type(m) is kind for m in model.modules()) == count
    shape = M.MODELS[name][1]
    with torch.no_grad():
        y = model(torch.randn(shape))
    out_channels = {"transformernet": 3, "cyclegan": 3, "unet3d": 64, "diffusion": 320}[name]
    assert y.shape[:2] == (1, out_channels)


@pytest.mark.slow
def test_quick_run_every_model_format_and_mode(tmp_path, capsys):
    path = tmp_path / "models.json"
    before = torch.get_num_threads()
    assert M.main(["--quick", "--threads", "1", "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    rows = {(r["model"], r["format"], r["mode"]) for r in report["results"]}
    assert rows == {(m, f, k) for m in M.MODELS for f in M.FORMATS for k in M.MODES}
    for r in report["results"]:
        assert r["max_diff"] < 1e-4, r  # outputs agree with torch's
        assert r["same_strides"], r  # channels-last in, channels-last out
        assert r["torch_ms"] > 0 and r["fastnorm_ms"] > 0
        if r["mode"] == "training" and r["format"] == "nchw":
            assert r["grad_diff"] < 1e-4, r
    text = capsys.readouterr().out
    assert "speedup" in text and "cyclegan" in text
    assert report["machine"]["torch_threads"] == 1
    assert torch.get_num_threads() == before  # restored after the run


def test_namespace_from_the_bench_cli(capsys):
    ns = argparse.Namespace(
        models="diffusion", formats="channels_last", modes="inference",
        quick=True, threads=1, json=None, repeat=1,
    )  # fmt: skip
    assert M.main(ns) == 0
    out = capsys.readouterr().out
    assert "diffusion" in out and "channels_last" in out and "transformernet" not in out


def test_bad_names_are_rejected(capsys):
    assert M.main(["--models", "resnet50", "--quick"]) == 2
    assert "models must be among" in capsys.readouterr().err
    with pytest.raises(ValueError, match="formats must be among"):
        M.run_models(["diffusion"], formats=["nhwc"])
    with pytest.raises(ValueError, match="model must be one of"):
        M.build_model("vgg")
