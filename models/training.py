"""Training loop for SESR: L1 on luma, Adam, random patches, checkpoints and resume.

A run lives in one folder: ``checkpoint.pt`` (expanded weights, optimizer, sampler and step,
rewritten atomically), ``log.jsonl`` (one JSON object per logged step or validation) and, at
the end, ``<variant>-x<scale>.safetensors`` with the collapsed weights and their training record.
Starting again with the same folder resumes from the checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import pickle
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .data import HOLDOUT_EVERY, DatasetError, ImagePair, PatchSampler, list_images, make_pair, split_holdout
from .descriptor import ModelDescriptor
from .network import SESR, collapse
from .weights import CollapsedWeights, save_weights

logger = logging.getLogger(__name__)

__all__ = ["TrainConfig", "TrainResult", "InitCheckpointError", "RunDirError", "train", "psnr_y"]


class RunDirError(ValueError):
    """The run folder's own checkpoint cannot be read or belongs to a run with other settings."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        super().__init__(f"{path}: {reason}")


class InitCheckpointError(ValueError):
    """The ``init_from`` checkpoint cannot be read or does not fit the network being trained."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        super().__init__(f"{path}: {reason}")


# What torch.load and the key lookups after it raise for a missing, truncated or foreign file.
CHECKPOINT_READ_ERRORS = (OSError, RuntimeError, KeyError, TypeError, ValueError, EOFError, pickle.UnpicklingError)

# Adam's first steps move every weight by about the learning rate whatever its gradient, and a
# linear block sums p such moves into one collapsed tap. Growing SESR-XL from a trained SESR-M11
# at 2e-4, step 1 raised the L1 loss 3.8×, and it took about 80 steps to recover. With a 500-step
# ramp the loss fell from the first step.
DEFAULT_INIT_WARMUP = 500


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run."""

    variant: str
    scale: int
    data: tuple[Path, ...]
    """Folders of HR training images."""
    run_dir: Path
    steps: int = 20000
    batch: int = 32
    patch: int = 64
    """LR patch side in pixels; HR patches are ``patch·scale``."""
    learning_rate: float = 5e-4
    final_learning_rate: float = 1e-5
    """Cosine decay from ``learning_rate`` to this value over ``steps``."""
    warmup_steps: int | None = None
    """Steps over which the learning rate ramps up linearly from zero to the cosine schedule;
    None means 500 with ``init_from`` and 0 without."""
    expansion: int | None = None
    """Linear-block width p; None takes the variant's default."""
    holdout_every: int = HOLDOUT_EVERY
    """Every n-th training image (sorted by name) is held out for validation."""
    validate_every: int = 500
    checkpoint_every: int = 250
    threads: int = 0
    """torch intra-op threads; 0 keeps torch's default."""
    seed: int = 0
    init_from: Path | None = None
    """Checkpoint of another run whose weights start this one (all but the last block when that
    run's scale differs); that network may have fewer blocks, channels or expansion width."""
    command: str = ""
    """Command line recorded in the weights file."""

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch < 1 or self.patch < 8:
            raise ValueError("steps and batch must be positive and patch at least 8")
        if self.holdout_every < 2:
            raise ValueError("holdout_every must be at least 2")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise ValueError(f"warmup steps must be 0 or more, got {self.warmup_steps}")

    @property
    def warmup(self) -> int:
        """Warm-up length in steps, with the default resolved."""
        if self.warmup_steps is not None:
            return self.warmup_steps
        return DEFAULT_INIT_WARMUP if self.init_from is not None else 0


@dataclass(frozen=True)
class TrainResult:
    """Outcome of a finished run."""

    weights: CollapsedWeights
    weights_path: Path
    validation_psnr: float
    steps: int


def psnr_y(prediction: np.ndarray, target: np.ndarray, border: int) -> float:
    """PSNR in dB of luma in [0, 1] after cropping ``border`` pixels from each side."""
    if border:
        prediction = prediction[border:-border, border:-border]
        target = target[border:-border, border:-border]
    mse = float(np.mean((prediction.astype(np.float64) - target.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * math.log10(1.0 / mse)


def _learning_rate(config: TrainConfig, step: int) -> float:
    """Return the learning rate of the step that follows ``step`` finished steps."""
    progress = min(step / config.steps, 1.0)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    rate = config.final_learning_rate + (config.learning_rate - config.final_learning_rate) * cosine
    if step < config.warmup:
        rate *= (step + 1) / config.warmup
    return rate


def _validate(model: SESR, pairs: list[ImagePair], scale: int) -> float:
    model.eval()
    scores = []
    with torch.no_grad():
        for pair in pairs:
            lr = torch.from_numpy(pair.lr)[None, None]
            sr = model(lr).clamp(0.0, 1.0)[0, 0].numpy()
            scores.append(psnr_y(np.round(sr * 255.0) / 255.0, np.round(pair.hr * 255.0) / 255.0, scale))
    model.train()
    return float(np.mean(scores))


def _thin(history: list[dict], count: int) -> list[dict]:
    """About ``count`` evenly spaced entries of ``history``, always ending with the last one."""
    sampled = history[:: max(1, len(history) // count)]
    if history and sampled[-1] is not history[-1]:
        sampled.append(history[-1])
    return sampled


def median_steps_per_second(log_path: Path) -> float | None:
    """Return the median training speed over the logged intervals of a run's ``log.jsonl``.

    Each pair of consecutive step records gives one rate, so time spent stopped, validating or
    restarting after an interruption affects only a few intervals, not the median.
    """
    rates = []
    previous = None
    for line in Path(log_path).read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if "elapsed_s" not in record:
            continue
        if previous is not None:
            steps = record["step"] - previous["step"]
            seconds = record["elapsed_s"] - previous["elapsed_s"]
            if steps > 0 and seconds > 0:
                rates.append(steps / seconds)
        previous = record
    return round(float(np.median(rates)), 2) if rates else None


def _save_checkpoint(path: Path, state: dict) -> None:
    temporary = path.with_name(path.name + ".partial")
    torch.save(state, temporary)
    os.replace(temporary, path)


def _embed(target: torch.Tensor, source: torch.Tensor, key: str) -> torch.Tensor:
    """Place ``source`` in the leading corner of ``target`` (freshly initialised, same rank).

    Entries through which a new channel would reach an old output are zeroed: the old rows of a
    k×k ``expand`` conv ignore new input channels, and the old outputs of a 1×1 ``project`` conv
    ignore new expansion channels. The network therefore computes what the source network did.
    The new entries still train: some get a gradient at the first step (the weights that read
    new channels), the others once those are non-zero.

    New output rows of a body ``project`` conv are zeroed too, so each body block passes a new
    channel through its short residual. Random rows there made the new channels grow block after
    block, to 6× the trained channels' standard deviation when widening M11 to XL.
    """
    result = target.detach().clone()
    if key.endswith(("expand.weight", "project.weight")):
        result[: source.shape[0], source.shape[1]:] = 0.0
    if key.startswith("body.") and key.endswith("project.weight"):
        result[source.shape[0]:] = 0.0
    result[tuple(slice(0, n) for n in source.shape)] = source
    return result


def _load_init(model: SESR, path: Path, scale: int) -> None:
    """Start ``model`` from another run's checkpoint, keeping what that network computes.

    From a run at another scale every tensor but the last block's is taken (the SESR paper's
    ×4-from-×2 initialisation). From a run at the same scale every tensor is taken.

    The source network may be smaller. With fewer channels or a narrower expansion width, its
    tensors fill the leading part of this model's (see ``_embed``). With fewer blocks, the extra
    blocks are appended as identities: their project conv is zero, so each block is its short
    residual, and their PReLU slope is 1. A trained SESR-M7 thus starts an SESR-M11, and an
    SESR-M11 starts an SESR-XL, at the accuracy it had.
    """
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        state, source_scale = checkpoint["model"], int(checkpoint["config"]["scale"])
    except CHECKPOINT_READ_ERRORS as error:
        raise InitCheckpointError(path, f"not a readable training checkpoint ({error}); "
                                  "pass the checkpoint.pt of an earlier `sesr train` run") from error
    own = model.state_dict()
    extra = sorted(k for k in state if k not in own)
    if extra:
        raise InitCheckpointError(
            path, f"that network has tensors this model lacks ({', '.join(extra[:3])}"
            f"{', ...' if len(extra) > 3 else ''}), so it has more blocks than --model; start from a "
            f"network with no more blocks or channels")
    loaded: dict[str, torch.Tensor] = {}
    for key, tensor in own.items():
        if key.startswith("tail.") and source_scale != scale:
            continue
        if key in state:
            source = state[key]
            if source.dim() != tensor.dim() or any(s > t for s, t in zip(source.shape, tensor.shape)):
                raise InitCheckpointError(
                    path, f"tensor {key} of shape {tuple(source.shape)} does not fit this model's "
                    f"{tuple(tensor.shape)}; start from a network with no more blocks or channels, "
                    f"and set --expansion to at least that run's width")
            loaded[key] = source if source.shape == tensor.shape else _embed(tensor, source, key)
        elif key.startswith("body.") and key.endswith("project.weight"):
            loaded[key] = torch.zeros_like(tensor)
        elif key.startswith("activations."):
            loaded[key] = torch.ones_like(tensor)
    model.load_state_dict(loaded, strict=False)
    logger.info("initialised %d of %d tensors from %s (×%d)", len(loaded), len(own), path, source_scale)


def _load_run_state(path: Path, model: SESR, optimizer: torch.optim.Optimizer, config: TrainConfig) -> dict:
    """Load a run's own checkpoint into ``model`` and ``optimizer`` and return it."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        saved = state["config"]
    except CHECKPOINT_READ_ERRORS as error:
        raise RunDirError(path, f"not a readable training checkpoint ({error}); delete it to start "
                                f"the run again, or use a new --run-dir") from error
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as error:
        raise RunDirError(path, f"checkpoint of a {saved.get('variant')} ×{saved.get('scale')} run whose "
                                f"tensors do not fit --model {config.variant} --scale {config.scale} "
                                f"--expansion {model.descriptor.expansion}; use a new --run-dir, or that "
                                f"run's own options to resume it") from error
    return state


def _trim_log(log_path: Path, step: int) -> None:
    """Drop log records after ``step`` (all of them at step 0): a resumed run writes them again."""
    if not log_path.exists():
        return
    if step == 0:
        log_path.unlink()
        return
    lines = [line for line in log_path.read_text(encoding="utf-8").splitlines()
             if line.strip() and json.loads(line)["step"] <= step]
    temporary = log_path.with_name(log_path.name + ".partial")
    temporary.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.replace(temporary, log_path)


def train(config: TrainConfig, progress: Callable[[int, int, dict], None] | None = None) -> TrainResult:
    """Train (or resume) one run and write its collapsed weights.

    ``progress(step, total, record)`` is called after every logged step.
    """
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    run_dir = Path(config.run_dir)
    checkpoint_path = run_dir / "checkpoint.pt"
    log_path = run_dir / "log.jsonl"

    # Model and optimizer, restored from the run's checkpoint when one exists. A mismatched run
    # folder or --init-from checkpoint fails here, before the images load.
    descriptor = ModelDescriptor.for_variant(config.variant, config.scale,
                                             expansion=config.expansion, collapsed=False)
    model = SESR(descriptor).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    step, elapsed, history, state = 0, 0.0, [], None
    if checkpoint_path.exists():
        state = _load_run_state(checkpoint_path, model, optimizer, config)
        step, elapsed, history = state["step"], state["elapsed_s"], state["validation"]
        logger.info("resuming %s at step %d", run_dir, step)
        if config.init_from is not None:
            logger.warning("%s resumes its own checkpoint; --init-from %s is ignored", run_dir, config.init_from)
    elif config.init_from is not None:
        _load_init(model, Path(config.init_from), config.scale)

    # Data: hold out a fixed part of the training images for validation.
    files = list_images(list(config.data))
    train_files, held_files = split_holdout(files, config.holdout_every)
    if not held_files:
        raise DatasetError(f"{len(files)} training images are too few: every {config.holdout_every}th image "
                           f"is held out for validation, so at least {config.holdout_every // 2 + 1} are needed")
    logger.info("loading %d training and %d validation images", len(train_files), len(held_files))
    train_pairs = [make_pair(f, config.scale) for f in train_files]
    held_pairs = [make_pair(f, config.scale) for f in held_files]
    sampler = PatchSampler(train_pairs, config.scale, config.patch, config.seed)
    if state is not None:
        sampler.rng.bit_generator.state = state["sampler_rng"]
        torch.set_rng_state(state["torch_rng"])
    run_dir.mkdir(parents=True, exist_ok=True)
    _trim_log(log_path, step)

    def checkpoint() -> None:
        _save_checkpoint(checkpoint_path, {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "sampler_rng": sampler.rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
            "step": step, "elapsed_s": elapsed, "validation": history,
            "config": {k: str(v) for k, v in dataclasses.asdict(config).items()},
        })

    # Training loop.
    if config.warmup >= config.steps:
        logger.warning("--warmup %d is not shorter than --steps %d, so the learning rate never reaches "
                       "its schedule; lower --warmup or raise --steps", config.warmup, config.steps)
    model.train()
    running, count, started = 0.0, 0, time.monotonic() - elapsed
    with log_path.open("a", encoding="utf-8") as log:
        while step < config.steps:
            for group in optimizer.param_groups:
                group["lr"] = _learning_rate(config, step)
            lr_np, hr_np = sampler.batch(config.batch)
            lr = torch.from_numpy(lr_np).to(memory_format=torch.channels_last)
            hr = torch.from_numpy(hr_np).to(memory_format=torch.channels_last)
            loss = F.l1_loss(model(lr), hr)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            running += loss.item()
            count += 1
            elapsed = time.monotonic() - started

            record: dict = {}
            if step % 50 == 0 or step == config.steps:
                record = {"step": step, "loss": running / count, "lr": _learning_rate(config, step),
                          "elapsed_s": round(elapsed, 1), "steps_per_s": round(step / max(elapsed, 1e-9), 3)}
                running, count = 0.0, 0
            if step % config.validate_every == 0 or step == config.steps:
                score = _validate(model, held_pairs, config.scale)
                history.append({"step": step, "psnr": round(score, 3)})
                record = {**record, "step": step, "validation_psnr": round(score, 3)}
                logger.info("step %d validation PSNR %.3f dB", step, score)
            if record:
                log.write(json.dumps(record) + "\n")
                log.flush()
                if progress is not None:
                    progress(step, config.steps, record)
            if step % config.checkpoint_every == 0 or step == config.steps:
                checkpoint()

    # Collapse and export with the training record.
    final_psnr = history[-1]["psnr"] if history else _validate(model, held_pairs, config.scale)
    best = max(history, key=lambda h: h["psnr"]) if history else {"step": step, "psnr": final_psnr}
    record = {
        "command": config.command,
        "data": [str(Path(d).name) for d in config.data],
        "train_images": len(train_files),
        "train_images_used": len(sampler.pairs),
        "validation_images": [f.name for f in held_files],
        "steps": step,
        "batch": config.batch,
        "lr_patch": config.patch,
        "expansion": descriptor.expansion,
        "optimizer": f"Adam, cosine learning rate {config.learning_rate:g} -> {config.final_learning_rate:g}"
                     + (f", the first {config.warmup} steps scaled by a linear ramp from 0" if config.warmup else ""),
        "loss": "L1 on BT.601 luma / 255",
        "lr_images": "MATLAB-style antialiased bicubic, RGB rounded to uint8",
        "init_from": str(config.init_from) if config.init_from else None,
        "wall_time_s": round(elapsed, 1),
        "steps_per_s_median": median_steps_per_second(log_path),
        "threads": torch.get_num_threads(),
        "validation_psnr": final_psnr,
        "validation_best": best,
        "validation_curve": _thin(history, 20),
        "torch": torch.__version__,
    }
    weights = collapse(model, training=record)
    weights_path = run_dir / f"{descriptor.variant}-x{descriptor.scale}.safetensors"
    save_weights(weights, weights_path)
    return TrainResult(weights, weights_path, final_psnr, step)
