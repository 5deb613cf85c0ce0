"""Training loop: data pairs, checkpoints, resume after an interruption, exported weights."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")
from models import load_weights  # noqa: E402
from models.data import PatchSampler, make_pair  # noqa: E402
from models.training import InitCheckpointError, TrainConfig, train  # noqa: E402


def _image_folder(root: Path, count: int = 6) -> Path:
    folder = root / "hr"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        # Smooth shapes plus a little noise, odd sizes so modcrop has work to do.
        y, x = np.mgrid[0:61 + i, 0:57 + 2 * i]
        base = 127 + 100 * np.sin(x / (4 + i)) * np.cos(y / 7)
        image = np.dstack([base, base[::-1], base[:, ::-1]]) + rng.normal(0, 4, (*base.shape, 3))
        cv2.imwrite(str(folder / f"img{i}.png"), np.clip(image, 0, 255).astype(np.uint8))
    return folder


def _config(tmp_path: Path, folder: Path, steps: int) -> TrainConfig:
    return TrainConfig(variant="sesr-m3", scale=2, data=(folder,), run_dir=tmp_path / "run",
                       steps=steps, batch=4, patch=16, expansion=8, holdout_every=3,
                       validate_every=10, checkpoint_every=10, threads=1)


def test_pair_shapes_follow_modcrop(tmp_path: Path) -> None:
    folder = _image_folder(tmp_path, count=2)
    pair = make_pair(folder / "img1.png", 2)          # 62×59 HR → modcrop 62×58 → LR 31×29
    assert pair.hr.shape == (62, 58), f"HR {pair.hr.shape}"
    assert pair.lr.shape == (31, 29), f"LR {pair.lr.shape}"
    assert pair.hr.min() >= 16 / 255 - 1e-6, f"luma minimum {pair.hr.min() * 255:.2f}/255 below 16/255"
    assert pair.hr.max() <= 235 / 255 + 1e-6, f"luma maximum {pair.hr.max() * 255:.2f}/255 above 235/255"


def test_patches_stay_aligned(tmp_path: Path) -> None:
    # With a constant-gradient image, every HR patch averaged over s×s blocks must track its LR patch.
    folder = _image_folder(tmp_path, count=3)
    pairs = [make_pair(p, 2) for p in sorted(folder.iterdir())]
    lr, hr = PatchSampler(pairs, 2, 12, seed=1).batch(8)
    pooled = hr.reshape(8, 1, 12, 2, 12, 2).mean(axis=(3, 5))
    error = np.abs(pooled - lr)[:, :, 2:-2, 2:-2].mean()
    assert lr.shape == (8, 1, 12, 12), f"LR batch {lr.shape}"
    assert hr.shape == (8, 1, 24, 24), f"HR batch {hr.shape}"
    assert error < 0.02, f"mean |pool(HR) − LR| {error:.4f}: patches misaligned"


def test_train_resume_and_export(tmp_path: Path) -> None:
    import torch

    folder = _image_folder(tmp_path)
    run = tmp_path / "run"

    # Interrupt at the step-20 report, before that step's checkpoint: step 10's remains.
    def interrupt(step: int, total: int, record: dict) -> None:
        if step >= 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_config(tmp_path, folder, steps=30), progress=interrupt)
    saved_step = torch.load(run / "checkpoint.pt", weights_only=False)["step"]
    assert saved_step == 10, f"checkpoint at step {saved_step}"
    assert not list(run.glob("*.safetensors")), "weights exported by an interrupted run"

    # The same command resumes from step 10 instead of starting again.
    result = train(_config(tmp_path, folder, steps=30))
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    steps_logged = [r["step"] for r in records if "validation_psnr" in r]
    assert steps_logged == [10, 20, 30], f"validation steps {steps_logged}"  # step 20 once: trimmed on resume
    assert result.steps == 30, f"{result.steps} steps"
    saved_step = torch.load(run / "checkpoint.pt", weights_only=False)["step"]
    assert saved_step == 30, f"final checkpoint at step {saved_step}"

    weights = load_weights(result.weights_path)
    assert weights.descriptor.variant == "sesr-m3", weights.descriptor
    assert weights.training["steps"] == 30, weights.training
    assert weights.training["validation_images"] == ["img1.png", "img4.png"], weights.training["validation_images"]
    assert np.isfinite(weights.training["validation_psnr"]), weights.training["validation_psnr"]


def test_init_from_same_and_other_scale(tmp_path: Path) -> None:
    import torch

    folder = _image_folder(tmp_path)
    source = train(_config(tmp_path, folder, steps=10))
    source_state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["model"]

    # steps=1 with a zero learning rate leaves the copied tensors as they were loaded.
    def first_state(scale: int, name: str) -> dict:
        config = dataclasses.replace(_config(tmp_path, folder, steps=1), scale=scale,
                                     run_dir=tmp_path / name, learning_rate=0.0,
                                     final_learning_rate=0.0, init_from=tmp_path / "run" / "checkpoint.pt")
        train(config)
        return torch.load(tmp_path / name / "checkpoint.pt", weights_only=False)["model"]

    same = first_state(2, "same")
    differing = [k for k in source_state if not torch.equal(source_state[k], same[k])]
    assert not differing, f"same-scale init changed {differing}"

    other = first_state(4, "other")
    body = [k for k in source_state if not k.startswith("tail.")]
    changed_body = [k for k in body if not torch.equal(source_state[k], other[k])]
    # The last block's k×k expansion conv has the same shape at ×2 and ×4, so only the rule skips it.
    same_shape_tail = [k for k in source_state if k.startswith("tail.") and other[k].shape == source_state[k].shape]
    copied_tail = [k for k in same_shape_tail if torch.equal(source_state[k], other[k])]
    assert body and not changed_body, f"×4 init changed body tensors {changed_body}"
    assert same_shape_tail, "no last-block tensor shares its shape across scales"
    assert not copied_tail, f"×4 init copied last-block tensors {copied_tail}"
    assert source.steps == 10, source


@pytest.mark.parametrize(("source", "target"), [
    (("sesr-m3", 8), ("sesr-m5", 8)),       # more blocks
    (("sesr-m3", 8), ("sesr-m5", 12)),      # more blocks and a wider expansion
    (("sesr-m11", 8), ("sesr-xl", 8)),      # 16 → 32 channels
])
def test_grown_network_keeps_output(tmp_path: Path, source: tuple, target: tuple) -> None:
    import torch

    from models import ModelDescriptor
    from models.network import SESR
    from models.training import _load_init

    torch.manual_seed(0)
    small = SESR(ModelDescriptor.for_variant(source[0], 2, expansion=source[1], collapsed=False))
    with torch.no_grad():
        for parameter in small.parameters():        # non-zero biases and slopes everywhere
            parameter.add_(0.05 * torch.randn_like(parameter))
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": small.state_dict(), "config": {"scale": "2"}}, path)

    large = SESR(ModelDescriptor.for_variant(target[0], 2, expansion=target[1], collapsed=False))
    _load_init(large, path, 2)
    y = torch.rand(2, 1, 14, 11)
    with torch.no_grad():
        expected, got = small(y), large(y)
    error = (expected - got).abs().max().item()
    assert error < 1e-5, f"grown network differs from its source by {error:.2e}"

    # Every added block and every added channel must take part in training from the first step.
    large(y).sub(torch.rand(2, 1, 28, 22)).abs().mean().backward()
    grown = large.body[-1].project.weight.grad
    assert grown.abs().sum() > 0, "added block's project conv gets no gradient"
    tail_new = large.tail.expand.weight.grad[:, small.descriptor.channels:]
    if tail_new.numel():
        assert tail_new.abs().sum() > 0, "last block gets no gradient from the added channels"


def test_init_from_larger_network_rejected(tmp_path: Path) -> None:
    import torch

    from models import ModelDescriptor
    from models.network import SESR
    from models.training import _load_init

    path = tmp_path / "checkpoint.pt"
    xl = SESR(ModelDescriptor.for_variant("sesr-xl", 2, expansion=8, collapsed=False))
    torch.save({"model": xl.state_dict(), "config": {"scale": "2"}}, path)
    m11 = SESR(ModelDescriptor.for_variant("sesr-m11", 2, expansion=8, collapsed=False))
    with pytest.raises(InitCheckpointError, match="does not fit"):
        _load_init(m11, path, 2)

    m3 = SESR(ModelDescriptor.for_variant("sesr-m3", 2, expansion=8, collapsed=False))
    with pytest.raises(InitCheckpointError, match="more blocks"):
        _load_init(m3, path, 2)

    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(path.read_bytes()[:100])
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    for bad in (damaged, empty, tmp_path / "missing.pt"):
        with pytest.raises(InitCheckpointError, match="not a readable training checkpoint"):
            _load_init(m11, bad, 2)


def test_median_speed_ignores_pauses_and_restarts(tmp_path: Path) -> None:
    from models.training import median_steps_per_second

    # 50-step intervals of 10 s (5 steps/s), one 500 s pause, a resume that repeats step 100,
    # and a validation record without timing.
    records = [{"step": 50, "elapsed_s": 10.0}, {"step": 100, "elapsed_s": 20.0},
               {"step": 150, "elapsed_s": 520.0}, {"step": 100, "elapsed_s": 20.0},
               {"step": 150, "elapsed_s": 30.0}, {"step": 150, "validation_psnr": 30.0},
               {"step": 200, "elapsed_s": 40.0}]
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    # Rates: 5, 0.1, 5, 5 (the step-100 repeat gives no interval) → median 5.
    assert median_steps_per_second(log) == 5.0


def test_train_unreadable_init_exits_2(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cli import app

    folder = _image_folder(tmp_path, count=3)
    missing = tmp_path / "missing.pt"
    result = CliRunner().invoke(app, ["train", str(folder), "--run-dir", str(tmp_path / "run"),
                                      "--model", "sesr-m3", "--steps", "2", "--batch", "2",
                                      "--patch", "8", "--expansion", "8", "--init-from", str(missing), "-q"])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    assert len(lines) == 1, result.stderr
    assert "missing.pt" in lines[0], result.stderr
    assert "checkpoint.pt" in lines[0], result.stderr
    assert not list((tmp_path / "run").glob("*.safetensors")), "weights written after a failed start"


def test_split_holdout_middle_of_runs() -> None:
    from models.data import split_holdout

    files = [Path(f"{i:03d}.png") for i in range(291)]
    training, held_out = split_holdout(files)
    assert [f.name for f in held_out][:3] == ["010.png", "030.png", "050.png"], held_out[:3]
    assert len(held_out) == 15, len(held_out)            # 291 images: indices 10, 30, ..., 290
    assert len(training) == 276, len(training)
    assert not set(training) & set(held_out), "an image is both held out and trained on"


def test_warmup_ramps_then_follows_cosine(tmp_path: Path) -> None:
    from models.training import _learning_rate

    fresh = TrainConfig(variant="sesr-m3", scale=2, data=(tmp_path,), run_dir=tmp_path, steps=1000,
                        learning_rate=1e-3, final_learning_rate=0.0)
    grown = dataclasses.replace(fresh, init_from=tmp_path / "checkpoint.pt")
    assert fresh.warmup == 0, fresh.warmup
    assert grown.warmup == 500, grown.warmup
    assert _learning_rate(fresh, 0) == pytest.approx(1e-3)
    assert _learning_rate(grown, 0) == pytest.approx(1e-3 / 500)        # first step: 1/500 of the peak
    cosine_249 = 0.5 * (1 + math.cos(math.pi * 249 / 1000)) * 1e-3
    assert _learning_rate(grown, 249) == pytest.approx(cosine_249 * 250 / 500)
    assert _learning_rate(grown, 500) == pytest.approx(_learning_rate(fresh, 500))  # ramp over
    assert _learning_rate(dataclasses.replace(grown, warmup_steps=0), 0) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="warmup"):
        dataclasses.replace(fresh, warmup_steps=-1)


def _cli_train(folder: Path, run: Path, *args: str):
    from typer.testing import CliRunner

    from cli import app

    return CliRunner().invoke(app, ["train", str(folder), "--run-dir", str(run), "--steps", "10",
                                    "--batch", "2", "--patch", "8", "--expansion", "8", "--threads", "1",
                                    "--validate-every", "10", *args])


def test_train_reused_run_dir_exits_2(tmp_path: Path) -> None:
    folder = _image_folder(tmp_path, count=12)
    run = tmp_path / "run"
    first = _cli_train(folder, run, "--model", "sesr-m3", "-q")
    assert first.exit_code == 0, first.stderr
    before = (run / "checkpoint.pt").read_bytes()

    for options in (["--model", "sesr-m5"], ["--model", "sesr-m3", "--scale", "4"]):
        result = _cli_train(folder, run, *options, "-q")
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.exit_code == 2, (options, result.stderr)
        assert len(lines) == 1, result.stderr
        assert "sesr-m3 ×2 run" in lines[0], result.stderr
        assert "--run-dir" in lines[0], result.stderr
    assert (run / "checkpoint.pt").read_bytes() == before, "a rejected run changed the checkpoint"


def test_train_too_few_images_exits_2(tmp_path: Path) -> None:
    folder = _image_folder(tmp_path, count=8)                # the first held-out image is the 11th

    result = _cli_train(folder, tmp_path / "run", "-q")

    assert result.exit_code == 2, result.stderr
    assert "8 training images are too few" in result.stderr, result.stderr
    assert "at least 11" in result.stderr, result.stderr
    assert not (tmp_path / "run").exists(), "a failed start left a run folder"


def test_resume_ignores_init_from_with_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = _image_folder(tmp_path)
    train(_config(tmp_path, folder, steps=10))
    other = dataclasses.replace(_config(tmp_path, folder, steps=10), run_dir=tmp_path / "other")
    train(other)

    resumed = dataclasses.replace(_config(tmp_path, folder, steps=20), init_from=tmp_path / "other" / "checkpoint.pt")
    with caplog.at_level("WARNING", logger="models.training"):
        train(resumed)
    assert any("is ignored" in record.getMessage() for record in caplog.records), caplog.text
    # 500 warm-up steps (the --init-from default) in a 20-step run: the ramp never ends.
    assert any("never reaches" in record.getMessage() for record in caplog.records), caplog.text


def test_train_early_interrupt_says_restart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import models.training

    def interrupted(config, progress=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(models.training, "train", interrupted)
    folder = _image_folder(tmp_path, count=12)

    result = _cli_train(folder, tmp_path / "run", "-q")

    assert result.exit_code == 130, (result.exit_code, result.stderr)
    assert "before the first checkpoint" in result.stderr, result.stderr
    assert "starts the run again" in result.stderr, result.stderr
