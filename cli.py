"""Command-line interface of sesr: ``upscale``, ``video``, ``models``, ``eval``, ``train`` and ``estimate``.

Only this module decides exit codes and renders output. ``upscale`` exits with 0 when every input
succeeded, 1 when any input failed, 2 for usage errors (typer's own code for bad options) and
130 on Ctrl-C. ``estimate`` documents its codes in its help.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from upscale.backends import Backend, Precision
from upscale.io import IMAGE_SUFFIXES, ImageFormat

if TYPE_CHECKING:
    from upscale import Upscaler

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Upscale images with SESR networks and estimate their cost on NPUs.")
stderr = Console(stderr=True)
stdout = Console()

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        stdout.print(f"sesr {version('sesr')}")
        raise typer.Exit(EXIT_OK)


# Options shared by upscale, video and eval, defined once so their help and checks agree.
BackendOption = Annotated[Backend, typer.Option(
    "--backend", help="Inference engine; auto picks the fastest installed one (OpenVINO, else onnxruntime).")]
PrecisionOption = Annotated[Optional[Precision], typer.Option(
    "--precision", show_default=False,
    help="Convolution arithmetic; default bf16 where the CPU has it, else fp32. int8 is fastest on OpenVINO "
         "(onnxruntime int8 is slower than its fp32) and loses 0.02 to 0.08 dB PSNR on photos with the "
         "shipped weights, but can change text, line art, screenshots and noise by tens of levels. int8 "
         "with --weights needs a calibration file beside them (scripts/calibrate_int8.py --weights). "
         "An unsupported choice falls back with a notice.")]
ThreadsOption = Annotated[Optional[int], typer.Option(
    "--threads", show_default=False,
    help="CPU threads for the backend; default: the physical cores; 0 = the engine's own default; "
         "more than the logical CPUs is lowered to them with a warning.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or notices; print only failures and errors.")]


def _check_threads(threads: Optional[int]) -> None:
    if threads is not None and threads < 0:
        raise _usage_error(f"--threads must be 0 (the engine's default) or a positive number, got {threads}")


def _missing_path(text: str) -> bool:
    """Tell whether an input argument names a path that does not exist and is no glob pattern."""
    return not any(c in text for c in "*?[") and not Path(text).exists()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Upscale images with SESR networks and estimate their cost on NPUs."""


def _setup_logging(quiet: bool, verbose: bool = False, quiet_level: int = logging.ERROR) -> None:
    level = logging.INFO
    if quiet:
        level = quiet_level
    elif verbose:
        level = logging.DEBUG
    if stderr.is_terminal:
        handler: logging.Handler = RichHandler(console=stderr, show_path=False)
        handler.setFormatter(logging.Formatter("%(message)s", datefmt="[%X]"))
    else:
        # Plain lines for log files and pipes: no timestamps column, no wrapping.
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)


def _usage_error(message: str) -> typer.Exit:
    stderr.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_USAGE)


def _open_upscaler(model: str, scale: Optional[int], *, weights: Optional[Path], backend: Backend,
                   precision: Optional[Precision], threads: Optional[int], quiet: bool) -> Upscaler:
    """Build the Upscaler of ``sesr upscale`` and ``sesr video`` and print its status line.

    ``scale`` None takes the scale of ``weights``, or 2 for shipped weights.
    """
    from models import MissingWeightsError, WeightsFileError
    from upscale import BackendError, Upscaler
    from upscale.int8 import CalibrationFileError

    try:
        upscaler = Upscaler(model, scale or 2, backend=backend, weights=weights, threads=threads,
                            precision=precision)
    except (MissingWeightsError, WeightsFileError, CalibrationFileError, BackendError, ValueError) as error:
        raise _usage_error(str(error))
    if weights is not None and scale is not None and upscaler.scale != scale:
        raise _usage_error(f"{weights} is a ×{upscaler.scale} model but --scale is {scale}; "
                           f"pass --scale {upscaler.scale} or leave --scale out")
    if not quiet:
        stderr.print(upscaler.describe(), highlight=False, soft_wrap=True)
    return upscaler


def _parse_format(text: str) -> ImageFormat:
    # The suffix table already maps the aliases jpeg and tif, and has no entry for bmp.
    image_format = ImageFormat.from_suffix("." + text)
    if image_format is None:
        raise ValueError(f"unknown --format {text!r}: choose png, jpg, webp or tiff")
    return image_format


class _Progress:
    """One rich progress bar over files, with a second bar for the tiles of large images."""

    def __init__(self, enabled: bool, total_files: int) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self.enabled = enabled
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(), console=stderr,
                                 disable=not enabled, transient=False)
        self.files = self.progress.add_task("files", total=total_files)
        self.tiles = None

    def __enter__(self) -> _Progress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def start_file(self, name: str) -> None:
        self.progress.update(self.files, description=name[-40:])

    def tile(self, done: int, total: int) -> None:
        if total <= 1:
            return
        if self.tiles is None:
            self.tiles = self.progress.add_task("  tiles", total=total)
        self.progress.update(self.tiles, completed=done, total=total)

    def end_file(self) -> None:
        if self.tiles is not None:
            self.progress.remove_task(self.tiles)
            self.tiles = None
        self.progress.advance(self.files)


def _print_summary(written: int, failed: list[tuple[Path, str]], skipped: list[tuple[int, str]],
                   quiet: bool) -> None:
    """Print the batch summary line and one line per failed input on stderr.

    ``skipped`` pairs a count with its label ("not images", "hidden", ...); zero counts are left out.
    """
    line = f"{written} written, {len(failed)} failed"
    parts = [f"{count} {label}" for count, label in skipped if count]
    if parts:
        line += ", skipped: " + ", ".join(parts)
    if not quiet or failed:
        stderr.print(line, highlight=False, soft_wrap=True)
    for path, reason in failed:
        stderr.print(f"[red]failed:[/red] {escape(str(path))}: {escape(reason)}", highlight=False, soft_wrap=True)


@app.command()
def upscale(
    inputs: Annotated[list[str], typer.Argument(help="Image files, folders (for example of video frames) or glob patterns.", show_default=False, metavar="INPUT")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder, or output file for a single input file.", show_default=False)],
    scale: Annotated[Optional[int], typer.Option("--scale", "-s", help="Upscaling factor: 2 or 4; default 2, or the scale of --weights.", show_default=False)] = None,
    model: Annotated[str, typer.Option("--model", "-m", help="sesr-m3, sesr-m5, sesr-m7, sesr-m11 or sesr-xl; `sesr models` lists those with shipped weights.")] = "sesr-m5",
    weights: Annotated[Optional[Path], typer.Option("--weights", help="Collapsed weights file to use instead of the shipped ones.")] = None,
    tile: Annotated[Optional[int], typer.Option("--tile", help="Tile side in input pixels; 0 = whole image; default 512 for images over 1 megapixel.")] = None,
    backend: BackendOption = Backend.AUTO,
    precision: PrecisionOption = None,
    image_format: Annotated[Optional[str], typer.Option("--format", "-f", help="Output format: png, jpg, webp or tiff; default keeps the input's (bmp → png).")] = None,
    quality: Annotated[int, typer.Option("--quality", min=1, max=100, help="JPEG/WebP quality.")] = 95,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing output files.")] = False,
    skip_existing: Annotated[bool, typer.Option("--skip-existing", help="Leave existing output files and process only missing ones.")] = False,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Descend into subfolders; the output mirrors the folder tree.")] = False,
    threads: ThreadsOption = None,
    quiet: QuietOption = False,
) -> None:
    """Upscale images ×2 or ×4 with an SESR network."""
    _setup_logging(quiet)
    from models import UnknownModelError, variant_spec
    from upscale import ExistingPolicy, plan_jobs, run_jobs

    # Validate options before touching any file.
    if overwrite and skip_existing:
        raise _usage_error("--overwrite and --skip-existing exclude each other; pass one")
    if scale is not None and scale not in (2, 4):
        raise _usage_error(f"--scale must be 2 or 4, got {scale}")
    if tile is not None and tile < 0:
        raise _usage_error(f"--tile must be 0 or a positive number of pixels, got {tile}")
    _check_threads(threads)
    try:
        variant_spec(model)
        chosen_format = _parse_format(image_format) if image_format else None
    except UnknownModelError as error:
        raise _usage_error(str(error))
    except ValueError as error:
        raise _usage_error(str(error))
    if chosen_format is not None and output.suffix.lower() in IMAGE_SUFFIXES and \
            ImageFormat.from_suffix(output.suffix) is not chosen_format:
        raise _usage_error(f"output {output} does not match --format {chosen_format.value}; "
                           f"change the suffix or the format")
    if output.exists() and not output.is_dir() and len(inputs) > 1:
        raise _usage_error(f"{output} is a file; several inputs need an output folder")
    # A single missing path is left to the job plan, which reports it as not found.
    single_file = len(inputs) == 1 and (Path(inputs[0]).is_file() or _missing_path(inputs[0]))
    if output.suffix.lower() in IMAGE_SUFFIXES and not output.is_dir() and not single_file:
        raise _usage_error(f"output {output} looks like a file name, but the input is a folder, a "
                           f"pattern or several files; give an output folder")

    upscaler = _open_upscaler(model, scale, weights=weights, backend=backend, precision=precision,
                              threads=threads, quiet=quiet)

    policy = (ExistingPolicy.OVERWRITE if overwrite else
              ExistingPolicy.SKIP if skip_existing else ExistingPolicy.FAIL)
    plan = plan_jobs(inputs, output, recursive=recursive, image_format=chosen_format, existing=policy)
    show_progress = not quiet and stderr.is_terminal

    try:
        with _Progress(show_progress, len(plan.jobs)) as progress:
            def process(job) -> None:
                progress.start_file(job.source.name)
                upscaler.upscale_file(job.source, job.target, image_format=chosen_format, tile=tile,
                                      quality=quality, on_tile=progress.tile)

            result = run_jobs(plan, process, on_done=lambda job, error: progress.end_file())
    except KeyboardInterrupt:
        stderr.print("interrupted; finished files are complete and no partial file was left. "
                     "Rerun with --skip-existing to continue.")
        raise typer.Exit(EXIT_INTERRUPTED)

    if not plan.jobs and not plan.failed and not plan.skipped_existing:
        has_subfolders = any(Path(i).is_dir() and any(p.is_dir() for p in Path(i).iterdir()) for i in inputs)
        hint = "; pass --recursive to descend into subfolders" if has_subfolders and not recursive else ""
        raise _usage_error(f"no image files found in the inputs{hint}")
    _print_summary(len(result.written), result.failed,
                   [(result.skipped_not_image, "not images"), (result.skipped_hidden, "hidden"),
                    (result.skipped_existing, "already done")], quiet)
    raise typer.Exit(EXIT_OK if result.ok else EXIT_FAILED)


@app.command("models")
def list_models(
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the shipped weights with parameters, MACs per pixel and measured PSNR.

    MACs/px are weight multiply-accumulates per input pixel, GMACs 1080p for one 1920×1080 input
    frame. Set5 dB is the benchmark PSNR on luma, val. dB the PSNR on the held-out training images.
    steps counts the last training run only; a run started with --init-from continues from another
    network (see models/weights/TRAINING.md).
    """
    import json

    from rich.table import Table

    from models import shipped_models

    rows = []
    for shipped in shipped_models():
        d, record = shipped.descriptor, shipped.training
        rows.append({
            "model": d.variant, "scale": d.scale, "channels": d.channels, "blocks": d.blocks,
            "parameters": d.parameters, "macs_per_pixel": d.macs_per_pixel,
            "gmacs_1080p_input": round(d.macs(1920, 1080) / 1e9, 2),
            "set5_psnr": record.get("set5_psnr"), "validation_psnr": record.get("validation_psnr"),
            "steps": record.get("steps"), "file": shipped.path.name,
        })
    if json_output:
        stdout.print_json(json.dumps(rows))
        return
    table = Table(title="Shipped SESR weights")
    for header in ("model", "scale", "params", "MACs/px", "GMACs 1080p", "Set5 dB", "val. dB", "steps"):
        table.add_column(header, justify="left" if header == "model" else "right")
    for row in rows:
        table.add_row(row["model"], f"×{row['scale']}", f"{row['parameters']:,}", f"{row['macs_per_pixel']:,}",
                      f"{row['gmacs_1080p_input']:.2f}",
                      f"{row['set5_psnr']:.2f}" if row["set5_psnr"] is not None else "—",
                      f"{row['validation_psnr']:.2f}" if row["validation_psnr"] is not None else "—",
                      f"{row['steps']:,}" if row["steps"] else "—")
    stdout.print(table)


@app.command("eval")
def evaluate(
    datasets: Annotated[list[Path], typer.Argument(help="Folders of HR images (for example Set5, Set14, BSD100).", show_default=False, metavar="DATASET_DIR")],
    model: Annotated[str, typer.Option("--model", "-m", help="Variant whose shipped weights are measured.")] = "sesr-m5",
    scale: Annotated[int, typer.Option("--scale", "-s", help="Upscaling factor: 2 or 4.")] = 2,
    weights: Annotated[Optional[Path], typer.Option("--weights", help="Collapsed weights file to measure instead of the shipped ones.")] = None,
    baseline: Annotated[Optional[str], typer.Option("--baseline", help="Add a baseline row: bicubic (MATLAB-style).")] = None,
    backend: BackendOption = Backend.AUTO,
    precision: PrecisionOption = None,
    threads: ThreadsOption = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")] = False,
    quiet: QuietOption = False,
) -> None:
    """Measure PSNR and SSIM on luma with the standard SR protocol.

    HR images are modcropped to the scale, shrunk with MATLAB-style antialiased bicubic
    resizing, upscaled, and compared on BT.601 luma with `scale` pixels cut at each border.

    An image that cannot be decoded or is too small is reported and left out, the others are
    still scored. Exit codes: 0 on success, 1 when an image was left out, 2 for invalid options
    or a missing or empty folder.
    """
    import json

    from models import MissingWeightsError, UnknownModelError, WeightsFileError, variant_spec
    from models.data import DatasetError, ImageDecodeError
    from upscale import BackendError, Upscaler
    from upscale.int8 import CalibrationFileError
    from upscale.metrics import bicubic_sr_luma, evaluate_folder, network_method
    from upscale.pipeline import upscale_luma

    _setup_logging(quiet)
    if scale not in (2, 4):
        raise _usage_error(f"--scale must be 2 or 4, got {scale}")
    _check_threads(threads)
    if baseline not in (None, "bicubic"):
        raise _usage_error(f"unknown --baseline {baseline!r}: the only baseline is bicubic")
    try:
        variant_spec(model)
        upscaler = Upscaler(model, scale, backend=backend, weights=weights, precision=precision, threads=threads)
    except (UnknownModelError, MissingWeightsError, WeightsFileError, CalibrationFileError, BackendError,
            ValueError) as error:
        raise _usage_error(str(error))
    if upscaler.scale != scale:
        raise _usage_error(f"{weights} is a ×{upscaler.scale} model but --scale is {scale}")
    if not quiet:
        stderr.print(upscaler.describe(), highlight=False, soft_wrap=True)

    name = weights.name if weights is not None else f"{upscaler.descriptor.variant}"
    methods = [(name, network_method(lambda luma: upscale_luma(luma, upscaler.network)))]
    if baseline == "bicubic":
        methods.insert(0, ("bicubic", bicubic_sr_luma))

    # Undecodable images are reported once each and left out; the others are still scored.
    failed: dict[Path, str] = {}

    def report(error: ImageDecodeError) -> None:
        if error.path not in failed:
            failed[error.path] = error.reason
            stderr.print(f"[red]failed:[/red] {escape(str(error.path))}: {escape(error.reason)}",
                         highlight=False, soft_wrap=True)

    results = []
    for folder in datasets:
        for method_name, method in methods:
            try:
                score = evaluate_folder(folder, method, scale, on_unreadable=report)
            except DatasetError as error:
                if not any(path.parent == folder for path in failed):
                    raise _usage_error(str(error))
                continue           # every image of this folder failed and has been reported
            skipped = sorted(path.name for path in failed if path.parent == folder)
            results.append({"dataset": folder.name, "method": method_name, "scale": scale,
                            "psnr": score.psnr, "ssim": score.ssim, "skipped": skipped,
                            "images": [{"name": i.name, "psnr": i.psnr, "ssim": i.ssim} for i in score.images]})

    if json_output:
        network = upscaler.network
        stdout.print_json(json.dumps({"model": upscaler.descriptor.variant, "scale": scale,
                                      "backend": network.backend.value, "precision": network.precision.value,
                                      "threads": network.threads, "results": results,
                                      "failed": [{"path": str(path), "reason": reason}
                                                 for path, reason in failed.items()]}))
    else:
        _print_eval_tables(results, scale)
    if failed:
        raise typer.Exit(EXIT_FAILED)


def _print_eval_tables(results: list[dict], scale: int) -> None:
    from rich.table import Table

    for result in results:
        skipped = f" ({len(result['skipped'])} unusable image(s) left out)" if result["skipped"] else ""
        table = Table(title=f"{result['dataset']} ×{scale}: {result['method']}{skipped}")
        table.add_column("image")
        table.add_column("PSNR (dB)", justify="right")
        table.add_column("SSIM", justify="right")
        for image in result["images"]:
            table.add_row(image["name"], f"{image['psnr']:.2f}", f"{image['ssim']:.4f}")
        table.add_row("[bold]mean[/bold]", f"[bold]{result['psnr']:.2f}[/bold]", f"[bold]{result['ssim']:.4f}[/bold]")
        stdout.print(table)


@app.command()
def train(
    data: Annotated[list[Path], typer.Argument(help="Folders of HR training images (for example T91 and BSD200).", metavar="DATA_DIR", show_default=False)],
    run_dir: Annotated[Path, typer.Option("--run-dir", help="Folder for checkpoints, log and weights; an existing run resumes.")],
    model: Annotated[str, typer.Option("--model", help="Variant: sesr-m3, sesr-m5, sesr-m7, sesr-m11 or sesr-xl.")] = "sesr-m5",
    scale: Annotated[int, typer.Option("--scale", help="Upscaling factor, 2 or 4.")] = 2,
    steps: Annotated[int, typer.Option(help="Optimizer steps in total.")] = 20000,
    batch: Annotated[int, typer.Option(help="Patches per step.")] = 32,
    patch: Annotated[int, typer.Option(help="LR patch side in pixels.")] = 64,
    learning_rate: Annotated[float, typer.Option("--lr", help="Initial Adam learning rate (cosine decay).")] = 5e-4,
    expansion: Annotated[Optional[int], typer.Option(help="Linear-block width p during training (default 256). The collapsed network's size and cost do not depend on p. With --init-from, at least the source run's p.")] = None,
    warmup: Annotated[Optional[int], typer.Option("--warmup", help="Steps of linear learning-rate warm-up; default 500 with --init-from, else 0.")] = None,
    init_from: Annotated[Optional[Path], typer.Option("--init-from", help="checkpoint.pt of another run to start from: all but the last block from another scale, the whole network from the same scale. A smaller network (fewer blocks or channels, no wider p) is embedded so that it computes the same output, for example sesr-m7 to start sesr-m11; a larger one is rejected. Ignored when --run-dir already has a checkpoint, which resumes.")] = None,
    validate_every: Annotated[int, typer.Option(help="Steps between validation PSNR measurements.")] = 500,
    threads: Annotated[int, typer.Option(help="torch CPU threads; 0 keeps torch's default.")] = 0,
    seed: Annotated[int, typer.Option(help="Random seed for initialisation and patches.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print warnings and errors only.")] = False,
) -> None:
    """Train an SESR network on a folder of HR images and write collapsed weights."""
    _setup_logging(quiet, quiet_level=logging.WARNING)
    try:
        from models.training import TrainConfig
        from models.training import train as run_training
    except ImportError as error:
        raise _usage_error(f"training needs PyTorch ({error}); install it with: pip install 'sesr[train]'")
    from models.descriptor import UnknownModelError, variant_spec

    try:
        variant_spec(model)
        config = TrainConfig(
            variant=model, scale=scale, data=tuple(data), run_dir=run_dir, steps=steps, batch=batch,
            patch=patch, learning_rate=learning_rate, warmup_steps=warmup, expansion=expansion, init_from=init_from,
            validate_every=validate_every, threads=threads, seed=seed,
            command="sesr " + shlex.join(sys.argv[1:]),
        )
    except (UnknownModelError, ValueError) as error:
        raise _usage_error(str(error))

    from models.data import DatasetError
    from models.training import InitCheckpointError, RunDirError
    try:
        result = run_training(config)
    except (DatasetError, InitCheckpointError, RunDirError) as error:
        raise _usage_error(str(error))
    except KeyboardInterrupt:
        checkpoint = run_dir / "checkpoint.pt"
        if checkpoint.exists():
            message = f"interrupted; rerun the same command to resume from {checkpoint}"
        else:
            message = "interrupted before the first checkpoint; rerunning the same command starts the run again"
        stderr.print(message, markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_INTERRUPTED)
    stdout.print(f"wrote {result.weights_path} (validation PSNR {result.validation_psnr:.3f} dB "
                 f"after {result.steps} steps)")


@app.command()
def estimate(
    model: Annotated[list[str], typer.Option("--model", "-m", metavar="NAME|FILE.onnx", help="Network: sesr-m3, sesr-m5, sesr-m7, sesr-m11, sesr-xl, fsrcnn, fsrcnn-small, espcn, vdsr, edsr-baseline, or an .onnx file. Repeat to compare.")] = ["sesr-m5"],
    scale: Annotated[int, typer.Option("--scale", "-s", help="Upscaling factor of built-in networks: 2 or 4.")] = 2,
    input_size: Annotated[list[str], typer.Option("--input-size", metavar="WxH", help="Low-resolution input as WIDTHxHEIGHT pixels, or 360p, 540p, 720p, 1080p, 4k. Repeat to compare.")] = ["1080p"],
    npu: Annotated[list[str], typer.Option("--npu", metavar="NAME", help="NPU profile, for example ethos-u55-256, ethos-u65-256, ethos-u85-512, ethos-n78-2048. Repeat to compare.")] = ["ethos-u65-256"],
    precision: Annotated[str, typer.Option("--precision", help="int8, int16 (16-bit activations, 8-bit weights) or fp16 (needs a --profile whose accelerator lists fp16 rates).")] = "int8",
    system_config: Annotated[Optional[str], typer.Option("--system-config", help="System configuration (clock, memories); default: the NPU family's, as in Vela.")] = None,
    memory_mode: Annotated[Optional[str], typer.Option("--memory-mode", help="Memory mode: Sram_Only, Shared_Sram, Dedicated_Sram, Dedicated_Sram_256KB/384KB/512KB (Ethos-U) or Ethos_N78_Sram_Cache; default: the NPU family's.")] = None,
    profile: Annotated[Optional[list[Path]], typer.Option("--profile", metavar="FILE", help="Extra profile TOML file; its entries add to or replace the shipped ones.")] = None,
    clock: Annotated[Optional[float], typer.Option("--clock", metavar="MHZ", help="NPU clock in MHz, replacing the profile's.")] = None,
    dram_bandwidth: Annotated[Optional[float], typer.Option("--dram-bandwidth", metavar="GB/S", help="External memory bandwidth in GB/s (10⁹ bytes/s), replacing the profile's.")] = None,
    sram_size: Annotated[Optional[float], typer.Option("--sram-size", metavar="KIB", help="On-chip memory for feature maps in KiB, replacing the memory mode's cache size.")] = None,
    rewrite_unsupported: Annotated[bool, typer.Option("--rewrite-unsupported", help="Cost a depth-to-space the NPU cannot run as its one-hot transposed-convolution rewrite instead of leaving it to the CPU.")] = False,
    fused: Annotated[bool, typer.Option("--fused", help="Also plan fused execution: consecutive layers processed in tiles held in on-chip memory, fused only where that takes fewer cycles; reports FPS, DRAM traffic and the reason for each group.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")] = False,
    csv_path: Annotated[Optional[Path], typer.Option("--csv", metavar="FILE", help="Write the per-layer table of every run to this CSV file.")] = None,
    plot_path: Annotated[Optional[Path], typer.Option("--plot", metavar="FILE.png", help="Draw per-layer compute and memory cycles and a roofline of every run to this PNG file (needs matplotlib).")] = None,
) -> None:
    """Estimate MACs, memory traffic, cycles and FPS of networks on Arm Ethos NPUs.

    Every combination of --model, --input-size and --npu is one run. Exit codes: 0 on success.
    2 for an invalid option value, such as an unknown model or NPU, a bad size, or an ONNX file
    that cannot be read or uses an operator the estimator does not support. 1 when the --csv or
    --plot file cannot be written.
    """
    import csv
    import itertools
    import json

    from rich.table import Table

    import estimator as est

    # Parse and validate every option before estimating anything
    try:
        chosen_precision = est.Precision(precision.lower())
    except ValueError:
        raise _usage_error(f"unknown --precision {precision!r}: choose int8, int16 or fp16")
    if scale not in (2, 4):
        raise _usage_error(f"--scale must be 2 or 4, got {scale}")
    try:
        sizes = [est.parse_input_size(text) for text in input_size]
        catalogue = est.load_catalogue(profile or ())
        npus = [est.resolve_npu(name, catalogue, system=system_config, memory_mode=memory_mode, clock_mhz=clock,
                                dram_bandwidth_gbps=dram_bandwidth, sram_size_kib=sram_size) for name in npu]
        for spec in npus:
            spec.traversals_for(chosen_precision)
    except est.EstimatorError as error:
        raise _usage_error(str(error))

    # Estimate every (model, size, NPU) combination
    runs = []
    try:
        for name, (width, height), spec in itertools.product(model, sizes, npus):
            if name.lower().endswith(".onnx"):
                network = est.read_onnx(name, width, height)
            else:
                network = est.build_network(name, scale, width, height)
            cost = est.estimate(network, spec, chosen_precision, rewrite_unsupported=rewrite_unsupported)
            what_if = est.estimate_fused(network, spec, chosen_precision,
                                         rewrite_unsupported=rewrite_unsupported) if fused else None
            runs.append((spec, cost, what_if))
    except est.EstimatorError as error:
        raise _usage_error(str(error))

    # Files first, so a table on the terminal is the last thing printed
    try:
        if csv_path is not None:
            with open(csv_path, "w", newline="") as stream:
                writer = csv.DictWriter(stream, fieldnames=["model", "input_size", "npu", "precision", *est.LAYER_FIELDS])
                writer.writeheader()
                for _, cost, _ in runs:
                    for layer in cost.layers:
                        writer.writerow({"model": cost.model, "input_size": f"{cost.input_size[0]}x{cost.input_size[1]}",
                                         "npu": cost.npu, "precision": cost.precision, **est.layer_row(layer),
                                         "output_shape": "×".join(map(str, layer.output_shape))})
        if plot_path is not None:
            est.plot_costs([(cost, spec) for spec, cost, _ in runs], plot_path)
    except est.EstimatorError as error:
        raise _usage_error(str(error))
    except OSError as error:
        stderr.print(f"[red]error:[/red] failed to write {escape(str(error.filename))}: {escape(error.strerror or str(error))}",
                     highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_FAILED)

    if json_output:
        stdout.print_json(json.dumps({"runs": [est.run_record(cost, what_if) for _, cost, what_if in runs]}))
        return

    if not stdout.is_terminal:
        # Piped output has no terminal width; 160 columns keep the per-layer table readable.
        stdout.width = max(stdout.width, 160)

    def mib(value: float) -> str:
        return f"{value / 2**20:,.1f}"

    def summary_line(spec, cost, what_if) -> str:
        dominant = ", ".join(f"{c.name} {c.cycles / cost.cycles:.0%}" for c in cost.dominant_layers())
        line = (f"{cost.model} {cost.input_size[0]}x{cost.input_size[1]} on {spec.label} at "
                f"{spec.clock_hz / 1e6:g} MHz, {cost.precision}: {cost.macs / 1e9:.2f} GMACs "
                f"({cost.executed_macs / 1e9:.2f} executed), {cost.params:,} parameters, "
                f"{cost.cycles / 1e6:.1f} M cycles, {cost.fps:.2f} FPS, DRAM {mib(cost.dram_bytes)} MiB/frame, "
                f"SRAM {mib(cost.sram_bytes)} MiB/frame, {cost.bound}-bound; most cycles: {dominant}")
        if spec.overrides:
            line += f"; overrides: {', '.join(spec.overrides)}"
        if what_if is not None:
            line += (f"\n  fused what-if: {what_if.fps:.2f} FPS, DRAM {mib(what_if.dram_bytes)} MiB/frame, "
                     f"{len(what_if.fused_groups)} of {len(what_if.groups)} group(s) fused, largest on-chip "
                     f"buffer {what_if.buffer_bytes / 1024:,.0f} KiB")
            for group in what_if.groups:
                span = group.layers[0] if len(group.layers) == 1 else f"{group.layers[0]} … {group.layers[-1]}"
                line += f"\n    {span} ({len(group.layers)} layer(s)): {group.reason}"
        return line

    if len(runs) == 1:
        spec, cost, what_if = runs[0]
        table = Table(title=f"{cost.model} on {spec.label}")
        for header in ("layer", "op", "target", "output C×H×W", "MMACs", "params", "compute Mcyc",
                       "memory Mcyc", "cycles %", "DRAM MiB", "SRAM MiB", "bound", "util"):
            table.add_column(header, justify="left" if header in ("layer", "op", "target", "bound") else "right")
        for layer in cost.layers:
            table.add_row(layer.name, layer.op, layer.target, "×".join(map(str, layer.output_shape)), f"{layer.macs / 1e6:,.1f}",
                          f"{layer.params:,}", f"{layer.compute_cycles / 1e6:.2f}", f"{layer.memory_cycles / 1e6:.2f}",
                          f"{layer.cycles / cost.cycles:.1%}" if cost.cycles else "—", mib(layer.dram_bytes),
                          mib(layer.sram_bytes), layer.bound, f"{layer.utilisation:.0%}" if layer.executed_macs else "")
        stdout.print(table)
    else:
        table = Table(title="Estimates side by side")
        for header in ("model", "input", "NPU", "GMACs", "params", "M cycles", "FPS", "DRAM MiB", "SRAM MiB", "bound",
                       *(("fused FPS", "fused DRAM MiB") if fused else ())):
            table.add_column(header, justify="left" if header in ("model", "input", "NPU", "bound") else "right")
        for spec, cost, what_if in runs:
            extra = (f"{what_if.fps:.2f}", mib(what_if.dram_bytes)) if what_if is not None else ()
            table.add_row(cost.model, f"{cost.input_size[0]}x{cost.input_size[1]}", spec.name,
                          f"{cost.macs / 1e9:.2f}", f"{cost.params:,}", f"{cost.cycles / 1e6:.1f}", f"{cost.fps:.2f}",
                          mib(cost.dram_bytes), mib(cost.sram_bytes), cost.bound, *extra)
        stdout.print(table)

    for spec, cost, what_if in runs:
        stdout.print(summary_line(spec, cost, what_if), highlight=False, soft_wrap=True)
        for layer in cost.layers:
            if layer.note:
                stdout.print(f"  {layer.name}: {layer.note}", highlight=False, soft_wrap=True)
        for warning in cost.warnings:
            stderr.print(f"[yellow]warning:[/yellow] {cost.model} on {spec.name}: {warning}",
                         highlight=False, soft_wrap=True)


def _print_encoders(value: bool) -> None:
    if value:
        try:
            from upscale.video import available_encoders
        except ImportError:
            raise _usage_error("sesr video needs PyAV: pip install 'av>=18' (Python 3.11 or newer)") from None

        stdout.print("\n".join(available_encoders()), highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_OK)


@app.command()
def video(
    inputs: Annotated[list[Path], typer.Argument(help="Video files or folders of videos.", show_default=False, metavar="INPUT")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output file for one input file, otherwise an output folder.", show_default=False)],
    scale: Annotated[Optional[int], typer.Option("--scale", "-s", help="Upscaling factor: 2 or 4; default 2, or the scale of --weights.", show_default=False)] = None,
    model: Annotated[str, typer.Option("--model", "-m", help="sesr-m3, sesr-m5, sesr-m7, sesr-m11 or sesr-xl; `sesr models` lists those with shipped weights.")] = "sesr-m5",
    weights: Annotated[Optional[Path], typer.Option("--weights", help="Collapsed weights file to use instead of the shipped ones.")] = None,
    codec: Annotated[Optional[str], typer.Option("--codec", help="Video encoder: h264, hevc, vp9, vp8, av1, ffv1 or another name that --list-codecs prints; default vp9 for .webm, else h264.", show_default=False)] = None,
    crf: Annotated[Optional[int], typer.Option("--crf", min=0, help="Constant rate factor (lower is better quality): 0-51 for h264 and hevc, 0-63 for vp9, 4-63 for vp8, 1-63 for av1; default 18 for h264, 20 for hevc, 30 for vp9 and av1.", show_default=False)] = None,
    preset: Annotated[Optional[str], typer.Option("--preset", help="Encoder speed preset: ultrafast to placebo, for example medium or slow (h264, hevc), or -2 to 13 (av1).", show_default=False)] = None,
    pix_fmt: Annotated[Optional[str], typer.Option("--pix-fmt", help="Output pixel format, for example yuv420p; default yuv420p for 4:2:0 sources, else yuv444p.", show_default=False)] = None,
    no_audio: Annotated[bool, typer.Option("--no-audio", help="Drop the audio streams.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted job from its last finished segment in OUTPUT.partial/; an existing output without a work folder counts as done.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing output files.")] = False,
    skip_existing: Annotated[bool, typer.Option("--skip-existing", help="Leave existing output files and process only missing ones.")] = False,
    segment_seconds: Annotated[float, typer.Option("--segment-seconds", min=0.001, help="Length of a resumable segment in seconds of video.")] = 10.0,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Frames per network call.")] = 4,
    tile: Annotated[Optional[int], typer.Option("--tile", min=0, help="Tile side in input pixels; 0 = whole frame; default 512 for frames over 1 megapixel.", show_default=False)] = None,
    backend: BackendOption = Backend.AUTO,
    precision: PrecisionOption = None,
    threads: ThreadsOption = None,
    quiet: QuietOption = False,
    list_codecs: Annotated[bool, typer.Option("--list-codecs", callback=_print_encoders, is_eager=True, help="Print the video encoders of the installed PyAV, short names first, and exit.")] = False,
) -> None:
    """Upscale videos ×2 or ×4, keeping timing, audio, subtitles, rotation and color tags.

    Exit codes: 0 when every input succeeded or was skipped, 1 when any failed, 2 for invalid
    options, 130 after Ctrl-C.
    """
    import time

    _setup_logging(quiet)
    # SVT-AV1 prints its settings for every segment unless SVT_LOG limits it to errors (level 1).
    os.environ.setdefault("SVT_LOG", "1")
    from models import UnknownModelError, variant_spec
    try:
        from upscale.video import (ExistingPolicy, VideoError, VideoSettings, VideoSettingsError,
                                   check_encoder_settings, encoder_name, plan_video_jobs, upscale_video)
    except ImportError:
        raise _usage_error("sesr video needs PyAV, which installs with sesr on Python 3.11 and newer: "
                           "pip install 'av>=18'") from None

    # Options first, before any input is read.
    if overwrite and skip_existing:
        raise _usage_error("--overwrite and --skip-existing exclude each other; pass one")
    if scale is not None and scale not in (2, 4):
        raise _usage_error(f"--scale must be 2 or 4, got {scale}")
    _check_threads(threads)
    try:
        variant_spec(model)
    except UnknownModelError as error:
        raise _usage_error(str(error))
    settings = VideoSettings(codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt, audio=not no_audio,
                             tile=tile, batch_frames=batch, segment_seconds=segment_seconds)
    try:
        if codec is not None:
            check_encoder_settings(settings, encoder_name(codec, ".mkv"))
    except VideoSettingsError as error:
        raise _usage_error(str(error))
    _check_video_output(inputs, output, codec)

    existing = (ExistingPolicy.OVERWRITE if overwrite else
                ExistingPolicy.SKIP if skip_existing else ExistingPolicy.FAIL)
    plan = plan_video_jobs([str(path) for path in inputs], output, existing=existing, resume=resume, codec=codec)
    try:
        # Without --codec the encoder depends on each output's suffix (vp9 for .webm).
        for encoder in sorted({encoder_name(codec, job.target.suffix) for job in plan.jobs}):
            check_encoder_settings(settings, encoder)
    except VideoSettingsError as error:
        raise _usage_error(str(error))
    if not plan.jobs and not plan.failed and not plan.skipped_existing:
        raise _usage_error("no video files found in the inputs")

    upscaler = _open_upscaler(model, scale, weights=weights, backend=backend, precision=precision,
                              threads=threads, quiet=quiet)
    if len(plan.jobs) > 1 or any(path.is_dir() for path in inputs):
        output.mkdir(parents=True, exist_ok=True)

    failed = list(plan.failed)
    written = 0
    show_progress = not quiet and stderr.is_terminal
    try:
        with _VideoProgress(show_progress) as progress:
            for job in plan.jobs:
                progress.start(job.source.name)
                started = time.monotonic()
                try:
                    job.target.parent.mkdir(parents=True, exist_ok=True)
                    result = upscale_video(job, upscaler, settings, resume=resume, on_progress=progress.update)
                except VideoError as error:
                    failed.append((job.source, error.reason if error.path == job.source else str(error)))
                    progress.fail()
                    continue
                except OSError as error:
                    failed.append((job.source, f"{error.strerror or error} ({error.filename or job.target})"))
                    progress.fail()
                    continue
                except MemoryError:
                    failed.append((job.source, "out of memory; pass a smaller --tile or --batch"))
                    progress.fail()
                    continue
                written += 1
                progress.finish(result.frames)
                if quiet:
                    continue
                notices = [plan.notices[job.source]] if job.source in plan.notices else []
                for notice in notices + result.notices:
                    stderr.print(f"[yellow]warning:[/yellow] {escape(str(job.source))}: {escape(notice)}",
                                 highlight=False, soft_wrap=True)
                resumed = f", {result.resumed_frames} of them resumed" if result.resumed_frames else ""
                stderr.print(f"wrote {escape(str(job.target))} ({result.frames} frames{resumed}, "
                             f"{time.monotonic() - started:.1f} s)", highlight=False, soft_wrap=True)
    except KeyboardInterrupt:
        stderr.print("interrupted; no partial file was left under an output name. Rerun with --resume "
                     "to continue from the last finished segment.")
        raise typer.Exit(EXIT_INTERRUPTED)

    _print_summary(written, failed,
                   [(plan.skipped_not_video, "not videos"), (plan.skipped_hidden, "hidden"),
                    (plan.skipped_folders, "folders"), (plan.skipped_existing, "already done")], quiet)
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


def _check_video_output(inputs: list[Path], output: Path, codec: Optional[str]) -> None:
    """Reject an output path that cannot work for these inputs, as ``sesr upscale`` does."""
    from upscale.video import VIDEO_SUFFIXES, container_holds, encoder_name

    # A single missing path is left to the job plan, which reports it as not found.
    single_file = len(inputs) == 1 and (inputs[0].is_file() or _missing_path(str(inputs[0])))
    names_file = output.suffix.lower() in VIDEO_SUFFIXES and not output.is_dir()
    if output.exists() and not output.is_dir() and not single_file:
        raise _usage_error(f"{output} is a file; a folder or several inputs need an output folder")
    if names_file and not single_file:
        raise _usage_error(f"output {output} looks like a file name, but the input is a folder or several "
                           f"files; give an output folder")
    if not (names_file and single_file):
        return
    encoder = encoder_name(codec, output.suffix)
    label = codec or ("vp9" if output.suffix.lower() == ".webm" else "h264")
    if output.suffix.lower() == ".avi":
        raise _usage_error(f"output {output}: AVI cannot keep the source timestamps; write .mkv or .mp4")
    if not container_holds(output.suffix, encoder):
        raise _usage_error(f"output {output}: the {output.suffix} container cannot hold {label} video; "
                           f"write .mkv, or pass a --codec that {output.suffix} holds")


class _VideoProgress:
    """A rich progress bar over the frames of the current video; its total may be an estimate."""

    def __init__(self, enabled: bool) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("frames{task.fields[estimate]}"), TimeElapsedColumn(),
                                 TimeRemainingColumn(), console=stderr, disable=not enabled)
        self.task = None

    def __enter__(self) -> _VideoProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def start(self, name: str) -> None:
        self.task = self.progress.add_task(name[-40:], total=None, estimate="")

    def update(self, done: int, total: int, estimated: bool) -> None:
        # Matroska and WebM store no frame count, so the total is duration × rate there.
        self.progress.update(self.task, completed=done, total=total,
                             estimate=" (total estimated)" if estimated else "")

    def finish(self, frames: int) -> None:
        """Leave the bar of a written file at its real frame count, which an estimate can miss."""
        if self.task is not None:
            self.progress.update(self.task, completed=frames, total=frames, estimate="")
            self.progress.stop_task(self.task)
            self.task = None

    def fail(self) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None


if __name__ == "__main__":
    app()
