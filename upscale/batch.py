"""Batch upscaling of files: input discovery, output naming, safety checks and per-file errors.

Hidden files and files without an image suffix are skipped and counted. Each output is written
through a temporary name and renamed, and an output never replaces an input file. Two inputs
that map to one output both fail, whatever their order. An existing output fails unless the
policy is OVERWRITE or SKIP. A failing file is recorded and the batch goes on.
"""

from __future__ import annotations

import enum
import glob
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .io import IMAGE_SUFFIXES, ImageFormat, ImageReadError, ImageWriteError

logger = logging.getLogger(__name__)

__all__ = ["ExistingPolicy", "Job", "JobPlan", "BatchResult", "plan_jobs", "run_jobs"]


class ExistingPolicy(str, enum.Enum):
    """Policy for output files that already exist."""

    FAIL = "fail"
    OVERWRITE = "overwrite"
    SKIP = "skip"


@dataclass(frozen=True)
class Job:
    """One input file and the output path it is written to."""

    source: Path
    target: Path


@dataclass
class JobPlan:
    """Jobs to run, plus what was skipped or failed before any pixel was read."""

    jobs: list[Job] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    skipped_hidden: int = 0
    skipped_not_image: int = 0
    skipped_existing: int = 0


@dataclass
class BatchResult:
    """Outcome of a batch: written outputs, failures with reasons and skip counts."""

    written: list[Job] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    skipped_hidden: int = 0
    skipped_not_image: int = 0
    skipped_existing: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed


def _is_hidden(path: Path, root: Path | None) -> bool:
    parts = path.relative_to(root).parts if root is not None else (path.name,)
    return any(part.startswith(".") for part in parts)


def _expand(inputs: list[str], recursive: bool, plan: JobPlan) -> list[tuple[Path, Path | None]]:
    """Resolve files, folders and globs to (file, folder it was found in) pairs."""
    found: list[tuple[Path, Path | None]] = []
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            found.extend((p, path) for p in sorted(path.glob(pattern)) if p.is_file())
        elif path.is_file() and path.suffix.lower() not in IMAGE_SUFFIXES:
            # A file named on the command line is wanted, so a wrong type is an error, not a skip.
            suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
            plan.failed.append((path, f"not an image file; sesr reads {suffixes}"))
        elif path.is_file():
            found.append((path, None))
        elif glob.has_magic(text):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=recursive))
            files = [m for m in matches if m.is_file()]
            if not files:
                plan.failed.append((path, "no files match this pattern"))
            found.extend((m, None) for m in files)
        else:
            plan.failed.append((path, "not found; check the path"))
    return found


def _target(source: Path, root: Path | None, output: Path, single_file: bool,
            image_format: ImageFormat | None) -> Path:
    fmt = image_format or ImageFormat.from_suffix(source.suffix) or ImageFormat.PNG
    if single_file:
        return output
    relative = source.relative_to(root) if root is not None else Path(source.name)
    # Keep the input's own spelling of the suffix (.jpeg, .tiff) when the format is unchanged.
    suffix = source.suffix.lower() if ImageFormat.from_suffix(source.suffix) is fmt else fmt.suffix
    return (output / relative).with_suffix(suffix)


def plan_jobs(inputs: list[str], output: Path, *, recursive: bool = False,
              image_format: ImageFormat | None = None,
              existing: ExistingPolicy = ExistingPolicy.FAIL) -> JobPlan:
    """Turn command-line inputs into jobs, applying the skip, collision and overwrite rules.

    ``output`` is a file when there is exactly one input file and ``output`` has an image
    suffix and is not a folder. Otherwise it is a folder that mirrors each input folder.
    """
    plan = JobPlan()
    candidates: list[tuple[Path, Path | None]] = []
    for source, root in _expand(inputs, recursive, plan):
        if _is_hidden(source, root):
            plan.skipped_hidden += 1
        elif source.suffix.lower() not in IMAGE_SUFFIXES:
            plan.skipped_not_image += 1
        else:
            candidates.append((source, root))

    single_file = (len(candidates) == 1 and candidates[0][1] is None and not output.is_dir()
                   and output.suffix.lower() in IMAGE_SUFFIXES)
    if single_file and image_format is not None and ImageFormat.from_suffix(output.suffix) is not image_format:
        plan.failed.append((output, f"suffix does not match --format {image_format.value}"))
        return plan

    # Deduplicate inputs named twice, then map every input to its output.
    unique: dict[Path, tuple[Path, Path | None]] = {}
    for source, root in candidates:
        unique.setdefault(source.resolve(), (source, root))
    inputs_resolved = set(unique)
    by_target: dict[Path, list[Path]] = {}
    for source, root in unique.values():
        target = _target(source, root, output, single_file, image_format)
        by_target.setdefault(target.resolve(), []).append(source)

    for resolved_target, sources in sorted(by_target.items()):
        target = _target(sources[0], unique[sources[0].resolve()][1], output, single_file, image_format)
        if len(sources) > 1:
            names = ", ".join(str(s) for s in sources)
            for source in sources:
                plan.failed.append((source, f"output name collision: {names} would all write "
                                            f"{target}; rename one input or write to separate folders"))
            continue
        source = sources[0]
        if resolved_target in inputs_resolved or (target.exists() and target.samefile(source)):
            plan.failed.append((source, f"output {target} would overwrite an input file; "
                                        f"choose another output folder"))
        elif target.exists() and existing is ExistingPolicy.SKIP:
            plan.skipped_existing += 1
        elif target.exists() and existing is ExistingPolicy.FAIL:
            plan.failed.append((source, f"output {target} exists; pass --overwrite or --skip-existing"))
        else:
            plan.jobs.append(Job(source, target))
    plan.jobs.sort(key=lambda job: str(job.source))
    return plan


def run_jobs(plan: JobPlan, process: Callable[[Job], None],
             on_done: Callable[[Job, str | None], None] | None = None) -> BatchResult:
    """Run ``process`` on every job. A read, write or format error fails only that file.

    ``on_done(job, error)`` is called after each job with None on success. KeyboardInterrupt
    propagates at once; ``write_image`` removes its temporary file, so no partial output
    remains under a final name.
    """
    result = BatchResult(failed=list(plan.failed), skipped_hidden=plan.skipped_hidden,
                         skipped_not_image=plan.skipped_not_image,
                         skipped_existing=plan.skipped_existing)
    for job in plan.jobs:
        error: str | None = None
        try:
            job.target.parent.mkdir(parents=True, exist_ok=True)
            process(job)
        except (ImageReadError, ImageWriteError) as failure:
            error = failure.reason
        except MemoryError:
            error = "out of memory; pass a smaller --tile"
        except OSError as failure:
            error = f"{failure.strerror or failure} ({failure.filename or job.target})"
        if error is None:
            result.written.append(job)
        else:
            logger.debug("%s failed: %s", job.source, error)
            result.failed.append((job.source, error))
        if on_done is not None:
            on_done(job, error)
    return result

