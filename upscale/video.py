"""Upscale video files with PyAV (FFmpeg): timing, audio, subtitles, rotation and color tags kept.

A job runs three stages at once, joined by bounded queues: a decoder thread turns frames into
8-bit YCbCr planes (``upscale.video_frames``), the calling thread upscales batches of frames, and
an encoder thread writes them into fixed-length segments (``upscale.video_segments``). When
every frame is encoded, the segments and the source's audio and subtitle streams are muxed into
a hidden temporary file beside the output, which is then renamed to the output name. The work
folder ``OUTPUT.partial/`` keeps finished segments until then, so ``resume=True`` continues an
interrupted job after its last finished segment. Before the first frame is decoded, a probe file
shows whether the output container can hold the video codec and the source's other streams.
A source whose demuxer or decoder reports errors, or whose video ends early, fails as damaged.

Frame times are the source's presentation timestamps, unchanged, so a constant frame rate such
as 30000/1001 and the frame count are kept, and variable-rate input keeps its timestamps.
Rotated sources (a display matrix, as phones write) are rotated in the pixels, and the output
carries no display matrix.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import queue
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import av

from .api import Upscaler
from .batch import ExistingPolicy
from .video_frames import (AVCOL_RANGE_JPEG, AVCOL_RANGE_MPEG, PlaneFrame, frame_to_planes,
                           is_full_range, planes_to_frame, upscale_frames, working_format)
from .video_segments import (EncoderConfig, Manifest, SegmentMismatchError, SegmentRecord,
                             SegmentWriter, add_other_streams, join_segments, tag_hevc,
                             remove_work_folder)

logger = logging.getLogger(__name__)

__all__ = ["VideoError", "VideoReadError", "VideoWriteError", "VideoSettingsError", "VideoSettings",
           "VideoResult", "VideoJob", "VideoPlan", "VIDEO_SUFFIXES", "CODEC_ALIASES", "ExistingPolicy",
           "plan_video_jobs", "upscale_video", "available_encoders", "encoder_name", "check_encoder_settings",
           "container_holds"]

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".mts",
                            ".m2ts", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp", ".ogv", ".nut"})

# Short names accepted by --codec, mapped to FFmpeg encoder names in PyAV's wheels.
CODEC_ALIASES = {"h264": "libx264", "hevc": "libx265", "h265": "libx265", "vp9": "libvpx-vp9",
                 "vp8": "libvpx", "av1": "libsvtav1"}

# Encoders that take a CRF and a named preset through their private options, with their defaults.
# CRF 18 (x264) and 20 (x265) are near-transparent, and CRF 30 is the usual VP9/SVT-AV1
# starting point.
_DEFAULT_CRF = {"libx264": 18, "libx265": 20, "libvpx-vp9": 30, "libvpx": 10, "libsvtav1": 30}
# CRF ranges the encoders take for 8-bit video. x264 silently clips values above 51, libvpx
# (VP8) rejects values below its default minimum quantizer 4, and SVT-AV1 reads 0 as "unset".
_CRF_RANGE = {"libx264": (0, 51), "libx265": (0, 51), "libvpx-vp9": (0, 63), "libvpx": (4, 63),
              "libsvtav1": (1, 63)}
_PRESET_ENCODERS = frozenset({"libx264", "libx265", "libsvtav1"})
# Preset names of x264 and x265; SVT-AV1 takes numbers, checked by opening the encoder.
_X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                 "veryslow", "placebo")


class VideoError(ValueError):
    """A video job that failed; ``reason`` states the cause and the fix."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class VideoReadError(VideoError):
    """A source that is not a readable video (not a video, truncated, unsupported codec)."""


class VideoWriteError(VideoError):
    """An output that cannot be written with the requested codec, container or settings."""


class VideoSettingsError(ValueError):
    """An encoder option that no input can be written with, such as an unknown codec or a CRF
    out of the encoder's range. The message names the option and its valid values."""


@dataclass(frozen=True)
class VideoSettings:
    """Encoder and pipeline settings of a video job."""

    codec: str | None = None
    """FFmpeg encoder or alias (``h264``, ``hevc``, ``vp9``, ``av1``, ``ffv1``, ...); None picks
    VP9 for ``.webm`` outputs and H.264 otherwise."""
    crf: int | None = None
    """Constant rate factor; None takes the encoder's entry in ``_DEFAULT_CRF``."""
    preset: str | None = None
    """Encoder speed preset (x264/x265 names, SVT-AV1 numbers); None keeps the encoder's default."""
    pix_fmt: str | None = None
    """Output pixel format; None keeps the working format (yuv420p for 4:2:0 sources, else
    yuv444p) when the encoder supports it."""
    audio: bool = True
    """Copy (or re-encode) the source's audio streams."""
    tile: int | None = None
    """Tile side in input pixels for the network, as in ``upscale_array``."""
    batch_frames: int = 4
    """Frames upscaled in one network call per tile."""
    segment_seconds: float = 10.0
    """Length of a resumable segment in seconds of source video."""

    def __post_init__(self) -> None:
        if self.batch_frames < 1:
            raise ValueError(f"batch_frames must be at least 1, got {self.batch_frames}")
        if self.segment_seconds <= 0:
            raise ValueError(f"segment_seconds must be positive, got {self.segment_seconds}")
        if self.crf is not None and self.crf < 0:
            raise ValueError(f"crf must not be negative, got {self.crf}")


@dataclass
class VideoResult:
    """Outcome of one video job."""

    target: Path
    frames: int
    """Frames in the output."""
    resumed_frames: int = 0
    """Frames taken from segments of an earlier, interrupted run."""
    notices: list[str] = field(default_factory=list)
    """Changes the user should know about, such as audio that was re-encoded or dropped."""


@dataclass(frozen=True)
class VideoJob:
    """One source video and the output it is written to."""

    source: Path
    target: Path


@dataclass
class VideoPlan:
    """Jobs to run, plus what was skipped or failed before any frame was read."""

    jobs: list[VideoJob] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    notices: dict[Path, str] = field(default_factory=dict)
    """Per source: how its output name differs from the input's, such as ``.avi`` written as ``.mkv``."""
    skipped_hidden: int = 0
    skipped_not_video: int = 0
    skipped_folders: int = 0
    skipped_existing: int = 0


ProgressCallback = Callable[[int, int, bool], None]
"""``(frames done, total frames, whether the total is an estimate)``."""


def available_encoders() -> list[str]:
    """Names of the video encoders in the installed PyAV build, each with its short alias.

    Aliases of ``CODEC_ALIASES`` come first as ``alias (encoder)``. Hardware encoders (``*_nvenc``,
    ``*_qsv``, ``*_amf``, ``*_v4l2m2m``) are listed but open only on machines with that hardware
    and driver.
    """
    names = []
    for name in sorted(av.codecs_available):
        try:
            codec = av.Codec(name, "w")
        except (av.codec.codec.UnknownCodecError, ValueError):
            continue
        # Codec names such as "h264" resolve to their default encoder ("libx264"), listed by itself.
        if codec.type == "video" and codec.name == name:
            names.append(name)
    aliased = [f"{alias} ({encoder})" for alias, encoder in CODEC_ALIASES.items() if encoder in names]
    return aliased + [name for name in names if name not in CODEC_ALIASES.values()]


def encoder_name(codec: str | None, suffix: str) -> str:
    """FFmpeg encoder for ``--codec`` (an alias or an encoder name) and an output suffix.

    None picks VP9 for ``.webm`` and H.264 for every other suffix.
    """
    if codec is None:
        codec = "vp9" if suffix.lower() == ".webm" else "h264"
    return CODEC_ALIASES.get(codec, codec)


def _codec_label(encoder: str) -> str:
    """Return the short name of ``encoder`` that ``--codec`` takes (``vp8`` for libvpx)."""
    for alias, name in CODEC_ALIASES.items():
        if name == encoder:
            return alias
    return encoder


def check_encoder_settings(settings: VideoSettings, encoder: str) -> None:
    """Check ``settings`` against ``encoder`` before any input is read.

    Raises ``VideoSettingsError`` for an encoder missing from this PyAV build or failing to open
    (a hardware encoder without its device), a CRF outside the encoder's range, or a preset or
    pixel format the encoder rejects.
    """
    label = _codec_label(encoder)
    try:
        codec = av.Codec(encoder, "w")
    except (av.codec.codec.UnknownCodecError, ValueError):
        raise VideoSettingsError(f"unknown --codec {settings.codec or label!r}: choose h264, hevc, vp9, "
                                 f"vp8, av1, ffv1 or another encoder that --list-codecs prints") from None
    if codec.type != "video":
        raise VideoSettingsError(f"--codec {settings.codec or label} is not a video encoder; "
                                 f"`sesr video --list-codecs` lists the video encoders")

    formats = [f.name for f in codec.video_formats or ()]
    if settings.pix_fmt is not None and formats and settings.pix_fmt not in formats:
        raise VideoSettingsError(f"invalid --pix-fmt {settings.pix_fmt!r} for {label}: choose one of "
                                 f"{', '.join(formats)}")

    if settings.crf is not None:
        if encoder not in _CRF_RANGE:
            raise VideoSettingsError(f"{label} has no --crf setting; leave --crf out or use h264, hevc, "
                                     f"vp9, vp8 or av1")
        low, high = _CRF_RANGE[encoder]
        if not low <= settings.crf <= high:
            raise VideoSettingsError(f"--crf {settings.crf} is out of range for {label}: use {low} to {high}")

    if settings.preset is not None:
        if encoder not in _PRESET_ENCODERS:
            raise VideoSettingsError(f"{label} has no --preset; leave --preset out or use h264, hevc or av1")
        if encoder in ("libx264", "libx265") and settings.preset not in _X26X_PRESETS:
            raise VideoSettingsError(f"invalid --preset {settings.preset!r} for {label}: choose one of "
                                     f"{', '.join(_X26X_PRESETS)}")
        if encoder == "libsvtav1":
            _check_encoder_opens(encoder, formats, {"preset": settings.preset},
                                 f"invalid --preset {settings.preset!r} for av1: use a number from "
                                 f"-2 (slowest) to 13 (fastest)")

    # Hardware encoders are in the build but open only with their device and driver.
    _check_encoder_opens(encoder, formats, {},
                         f"encoder {label} failed to open; a hardware encoder needs its device and "
                         f"driver, so pick a software encoder such as h264, hevc, vp9 or av1")


def _check_encoder_opens(encoder: str, formats: list[str], options: dict[str, str], message: str) -> None:
    context = av.CodecContext.create(encoder, "w")
    context.width, context.height = 64, 64
    context.pix_fmt = "yuv420p" if not formats or "yuv420p" in formats else formats[0]
    context.time_base = Fraction(1, 25)
    if encoder == "libx265":
        options = {**options, "x265-params": "log-level=error"}  # x265 prints a banner on every open
    context.options = options
    try:
        context.open()
    except (av.FFmpegError, ValueError):
        raise VideoSettingsError(message) from None


# Job planning.

def plan_video_jobs(inputs: list[str], output: Path, *, existing: ExistingPolicy = ExistingPolicy.FAIL,
                    resume: bool = False, codec: str | None = None) -> VideoPlan:
    """Turn command-line inputs (files and folders of videos) into jobs.

    ``output`` is the output file when there is one input file and ``output`` has a video suffix
    and is not a folder. Otherwise it is a folder, and each output keeps its input's file name and
    suffix unless that container cannot hold the video encoder for ``codec`` (AVI, or H.264 into
    ``.ogv``). Then the output becomes ``.mkv`` and the plan notes it.

    Files named directly are tried whatever their suffix. In folders, only files with a suffix in
    ``VIDEO_SUFFIXES`` are taken, and hidden files, other files and subfolders are skipped and
    counted. An input named twice is one job. Two inputs that map to one output both fail. With
    ``resume``, an existing output whose work folder ``OUTPUT.partial/`` is gone counts as done.
    """
    plan = VideoPlan()
    sources: list[Path] = []
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            for child in sorted(path.iterdir()):
                if child.name.startswith("."):
                    plan.skipped_hidden += 1
                elif child.is_dir():
                    plan.skipped_folders += 1
                elif child.suffix.lower() not in VIDEO_SUFFIXES:
                    plan.skipped_not_video += 1
                else:
                    sources.append(child)
        elif path.is_file():
            sources.append(path)
        else:
            plan.failed.append((path, "not found; check the path"))

    # An input named twice (or found twice through a folder) is one job.
    unique: dict[Path, Path] = {}
    for source in sources:
        unique.setdefault(source.resolve(), source)
    single_file = (len(inputs) == 1 and len(unique) == 1 and Path(inputs[0]).is_file()
                   and not output.is_dir() and output.suffix.lower() in VIDEO_SUFFIXES)

    by_target: dict[Path, list[tuple[Path, Path]]] = {}
    for source in unique.values():
        target = output if single_file else _folder_target(source, output, codec, plan)
        by_target.setdefault(target.resolve(), []).append((source, target))

    for resolved, pairs in by_target.items():
        if len(pairs) > 1:
            names = ", ".join(str(source) for source, _ in pairs)
            for source, target in pairs:
                plan.failed.append((source, f"output name collision: {names} would all write {target}; "
                                            f"rename one input or write to separate folders"))
            continue
        source, target = pairs[0]
        work = target.with_name(target.name + ".partial")
        if resolved in unique or (target.exists() and target.samefile(source)):
            plan.failed.append((source, f"output {target} would overwrite an input file; "
                                        f"choose another output"))
        elif not target.exists() or existing is ExistingPolicy.OVERWRITE:
            plan.jobs.append(VideoJob(source, target))
        elif existing is ExistingPolicy.SKIP or (resume and not work.exists()):
            plan.skipped_existing += 1
        elif resume:
            plan.failed.append((source, f"output {target} exists and {work} holds an unfinished run; "
                                        f"pass --overwrite with --resume to finish it, or delete {work}"))
        else:
            plan.failed.append((source, f"output {target} exists; pass --overwrite or --skip-existing"))
    plan.jobs.sort(key=lambda job: str(job.source))
    plan.notices = {job.source: plan.notices[job.source] for job in plan.jobs if job.source in plan.notices}
    return plan


def _folder_target(source: Path, folder: Path, codec: str | None, plan: VideoPlan) -> Path:
    """Output path of ``source`` in an output folder: its own name, as ``.mkv`` where needed."""
    suffix = source.suffix
    encoder = encoder_name(codec, suffix)
    if suffix.lower() in (".avi",) or not container_holds(suffix, encoder):
        reason = ("AVI cannot keep the source timestamps" if suffix.lower() == ".avi"
                  else f"the {suffix} container cannot hold {_codec_label(encoder)}")
        plan.notices[source] = f"written as .mkv, because {reason}"
        suffix = ".mkv"
    return folder / (source.stem + suffix)


# Source probing.

@dataclass(frozen=True)
class _SourceInfo:
    width: int
    height: int
    source_format: str
    rate: Fraction
    time_base: Fraction
    total_frames: int
    total_is_estimate: bool
    rotation: int
    full_range: bool
    color: dict[str, int]
    sample_aspect_ratio: Fraction | None
    """Pixel shape of the upright picture; None when the source stores none (square pixels)."""
    end_seconds: float | None
    """End of the video stream in seconds as the container declares it; None when the container
    stores no duration of the video stream."""


def _probe(path: Path) -> _SourceInfo:
    """Open ``path`` and decode its first frame to learn the format, rotation and color tags."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoReadError(path, "no video stream found; pass a video file (an MP4 cut short before its index reads this way)")
            # FFmpeg opens PNG, JPEG and other stills as one-frame video through its image demuxers.
            if container.format.name == "image2" or container.format.name.endswith("_pipe"):
                raise VideoReadError(path, "is a still image, not a video; upscale it with sesr upscale")
            stream = container.streams.video[0]
            first = next(container.decode(stream), None)
            if first is None:
                raise VideoReadError(path, "no decodable video frame; the file may be truncated or empty")
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            if not rate:
                raise VideoReadError(path, "the video stream has no frame rate")
            time_base = stream.time_base or Fraction(1, 1_000_000)
            total = stream.frames
            estimate = total <= 0
            end_seconds = _video_end_seconds(container, stream)
            if estimate:
                # Matroska and WebM store no frame count: estimate it from duration × rate, with
                # the video's own duration where the container stores one (the DURATION tag).
                start = float(stream.start_time * time_base) if stream.start_time is not None else 0.0
                seconds = (end_seconds - start if end_seconds is not None
                           else float(stream.duration * time_base) if stream.duration
                           else (container.duration or 0) / av.time_base)
                total = max(1, round(seconds * float(rate)))
            rotation = first.rotation or 0
            if rotation % 90:
                raise VideoReadError(path, f"rotation of {rotation}° is not a multiple of 90°; "
                                           f"rotate the source first")
            codec_context = stream.codec_context
            color = {"colorspace": first.colorspace or codec_context.colorspace,
                     "color_primaries": codec_context.color_primaries,
                     "color_trc": codec_context.color_trc}
            full_range = is_full_range(first)
            width, height = (first.height, first.width) if rotation % 180 else (first.width, first.height)
            sar = stream.sample_aspect_ratio or codec_context.sample_aspect_ratio
            if sar and rotation % 180:
                sar = 1 / sar  # a quarter turn swaps the pixel's width and height
            sar = Fraction(sar) if sar and sar != 1 else None
            return _SourceInfo(width, height, first.format.name, Fraction(rate), Fraction(time_base),
                               total, estimate, rotation, full_range, color, sar, end_seconds)
    except av.FFmpegError as error:
        raise VideoReadError(path, f"not a readable video ({_ffmpeg_reason(error)}); check that the "
                                   f"file is complete and is a video") from None
    except VideoError:
        raise
    except ValueError as error:
        # PyAV raises ValueError (UnknownCodecError) for a stream without a decoder in this build.
        raise VideoReadError(path, f"unsupported video codec ({error}); convert the file with FFmpeg "
                                   f"to a common codec such as H.264 first") from None


# Demuxers (FFmpeg names) that store a duration for each stream.
_STREAM_DURATION_FORMATS = frozenset({"mov", "mp4", "matroska", "webm", "avi", "ogg"})


def _video_end_seconds(container: av.container.InputContainer, stream: av.VideoStream) -> float | None:
    """End time of the video stream that the container declares, in seconds.

    Taken from the stream's duration (MP4, MOV, AVI, Ogg; with an edit list this is the presented
    duration), else its Matroska ``DURATION`` tag, else the container's duration when the
    video is its only stream. The frame count is not used, because MP4 edit lists can hide
    stored frames. Other formats give None, because FFmpeg may fill their stream durations from
    the container's duration (which audio can extend) or estimate them from the bit rate.
    """
    if not set(container.format.name.split(",")) & _STREAM_DURATION_FORMATS:
        return None
    start = float(stream.start_time * stream.time_base) if stream.start_time is not None and stream.time_base else 0.0
    if stream.duration and stream.time_base:
        return start + float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    if tag:
        try:
            hours, minutes, seconds = tag.split(":")
            return start + int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        except ValueError:
            pass
    if len(container.streams) == 1 and container.duration:
        return float(container.duration) / av.time_base
    return None


def _ffmpeg_reason(error: av.FFmpegError) -> str:
    return error.strerror or type(error).__name__


# Encoder settings.

def _encoder_config(job: VideoJob, settings: VideoSettings, info: _SourceInfo, scale: int) -> EncoderConfig:
    """Encoder settings for ``job``; ``check_encoder_settings`` has vetted the options."""
    codec_name = encoder_name(settings.codec, job.target.suffix)
    try:
        codec = av.Codec(codec_name, "w")
    except (av.codec.codec.UnknownCodecError, ValueError):
        raise VideoWriteError(job.target, f"encoder {_codec_label(codec_name)!r} is not in this PyAV "
                                          f"build; `sesr video --list-codecs` lists those available") from None
    if codec.type != "video":
        raise VideoWriteError(job.target, f"{_codec_label(codec_name)!r} is not a video encoder")

    working = working_format(info.source_format)
    formats = [f.name for f in codec.video_formats or ()]
    pix_fmt = settings.pix_fmt or (working if not formats or working in formats else formats[0])
    if formats and pix_fmt not in formats:
        raise VideoWriteError(job.target, f"encoder {_codec_label(codec_name)} does not take --pix-fmt "
                                          f"{pix_fmt}; choose one of {', '.join(formats)}")

    options: dict[str, str] = {}
    crf = settings.crf if settings.crf is not None else _DEFAULT_CRF.get(codec_name)
    if crf is not None:
        if codec_name not in _DEFAULT_CRF:
            raise VideoWriteError(job.target, f"encoder {_codec_label(codec_name)} has no CRF setting; "
                                              f"leave --crf out")
        options["crf"] = str(crf)
        if codec_name in ("libvpx-vp9", "libvpx"):
            options["b"] = "0"  # libvpx uses constant quality only when the bit-rate target is 0
    if codec_name == "libx265":
        options["x265-params"] = "log-level=error"  # x265 prints its settings for every segment otherwise
    if settings.preset is not None:
        if codec_name not in _PRESET_ENCODERS:
            raise VideoWriteError(job.target, f"encoder {_codec_label(codec_name)} has no --preset; "
                                              f"leave it out")
        options["preset"] = settings.preset

    color = dict(info.color)
    color["color_range"] = AVCOL_RANGE_JPEG if info.full_range else AVCOL_RANGE_MPEG
    return EncoderConfig(codec_name, info.width * scale, info.height * scale, pix_fmt, info.rate,
                         options, color, info.sample_aspect_ratio)


def _job_identity(job: VideoJob, upscaler: Upscaler, config: EncoderConfig, settings: VideoSettings) -> dict:
    """Everything that must be equal for finished segments to be reused by a resume."""
    stat = job.source.stat()
    weights = upscaler.weights
    digest = hashlib.sha256(weights.head.weight.tobytes() + weights.tail.weight.tobytes()).hexdigest()[:16]
    return {"source": str(job.source.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "model": f"{upscaler.descriptor.variant}-x{upscaler.scale}", "weights": digest,
            "backend": upscaler.backend.value, "precision": upscaler.precision.value, "codec": config.codec, "options": config.options,
            "pix_fmt": config.pix_fmt, "tile": settings.tile, "segment_seconds": settings.segment_seconds}


# The three stages.

_END = object()


class _Stages:
    """Decoder and encoder threads around the upscaling loop, with bounded queues between them."""

    def __init__(self, depth: int) -> None:
        self.decoded: queue.Queue = queue.Queue(maxsize=depth)
        self.upscaled: queue.Queue = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.threads: list[threading.Thread] = []

    def start(self, target: Callable[[], None], name: str) -> None:
        def guarded() -> None:
            try:
                target()
            except BaseException as error:  # re-raised in the calling thread by check()
                self.error = self.error or error
                self.stop.set()

        thread = threading.Thread(target=guarded, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def put(self, destination: queue.Queue, item: object) -> bool:
        """Put ``item`` unless the job is stopping; returns False when it stopped."""
        while not self.stop.is_set():
            try:
                destination.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(self, source: queue.Queue) -> object:
        """Get the next item, or ``_END`` when the job is stopping."""
        while not self.stop.is_set():
            try:
                return source.get(timeout=0.1)
            except queue.Empty:
                continue
        return _END

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def shutdown(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


@contextmanager
def _captured_ffmpeg_errors() -> Iterator[list[tuple[int, str, str]]]:
    """Collect FFmpeg's error messages, from every thread, as ``(level, name, message)``.

    PyAV drops FFmpeg's messages unless a log level is set, so ERROR is set for the block, and
    a global capture keeps them out of Python logging. Decoder threads started by FFmpeg are
    not Python threads, so a thread-local capture would miss their messages.
    """
    previous = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR if previous is None else max(previous, av.logging.ERROR))
    try:
        with av.logging.Capture(local=False) as logs:
            yield logs
    finally:
        av.logging.set_level(previous)


def _first_error(logs: list[tuple[int, str, str]], start: int, names: set[str]) -> str | None:
    """First error message from position ``start`` on whose source is one of ``names``."""
    for level, name, message in logs[start:]:
        if level <= av.logging.ERROR and name in names:
            return f"{name}: {message.strip()}"
    return None


def _damaged(path: Path, detail: str) -> VideoReadError:
    return VideoReadError(path, f"the file looks truncated or damaged ({detail}); check that it was "
                                f"copied completely, or repair or re-create it")


def _decode(path: Path, info: _SourceInfo, skip: int,
            errors: list[tuple[int, str, str]] | None = None) -> Iterator[PlaneFrame]:
    """Decode every frame of ``path`` from frame ``skip`` on, with strictly increasing timestamps.

    Raises ``VideoReadError`` in three cases. Decoding fails, or the demuxer or decoder reports
    an error in ``errors`` (filled by ``_captured_ffmpeg_errors``) after the first frame, or the
    last frame ends early. Early means before the end the container declares by more than 3
    frame durations or 0.25 s, whichever is longer.
    Messages before the first frame are not counted, because a decoder reports missing
    references while it looks for the first key frame, as in a recording that starts mid-GOP.

    NOTE: frames before ``skip`` are decoded and dropped instead of seeking, because a seek lands
    on a key frame and frame indices would have to be recovered from timestamps.
    """
    step = max(1, round(1 / (info.rate * info.time_base)))
    working = working_format(info.source_format)
    errors = errors if errors is not None else []
    previous: int | None = None
    end = 0
    index = 0
    first_error_position: int | None = None
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            sources = {container.format.name, stream.codec_context.name}
            for frame in container.decode(stream):
                if first_error_position is None:
                    first_error_position = len(errors)
                elif (detail := _first_error(errors, first_error_position, sources)) is not None:
                    raise _damaged(path, f"after frame {index}, {detail}")
                if frame.pts is not None:
                    pts = frame.pts
                else:
                    pts = 0 if previous is None else previous + step
                # Decoders can repeat a timestamp on broken input; the muxers need increasing ones.
                if previous is not None and pts <= previous:
                    pts = previous + 1
                previous = pts
                duration = frame.duration if frame.duration and frame.duration > 0 else step
                end = pts + duration
                if index >= skip:
                    yield frame_to_planes(frame, working, info.full_range, info.rotation, index, pts, duration)
                index += 1
    except av.FFmpegError as error:
        raise _damaged(path, f"decoding failed after frame {index}: {_ffmpeg_reason(error)}") from None

    # Truncation: the demuxer's own message, or a video stream that ends early.
    if first_error_position is not None:
        detail = _first_error(errors, first_error_position, sources)
        if detail is not None:
            raise _damaged(path, f"after frame {index}, {detail}")
    if info.end_seconds is not None and index:
        decoded_seconds = float(end * info.time_base)
        tolerance = max(3 / float(info.rate), 0.25)
        if decoded_seconds < info.end_seconds - tolerance:
            raise _damaged(path, f"{index} frames decoded, ending at {decoded_seconds:.2f} s, but the "
                                 f"container lists {info.end_seconds:.2f} s of video")


def _fix_durations(records: list[SegmentRecord]) -> None:
    """Set each frame's duration to the gap to the next frame; the last frame keeps its own."""
    pts = [p for record in records for p in record.pts]
    position = 0
    for record in records:
        for i in range(len(record.pts)):
            if position + 1 < len(pts):
                record.durations[i] = pts[position + 1] - pts[position]
            position += 1


def upscale_video(job: VideoJob, upscaler: Upscaler, settings: VideoSettings = VideoSettings(), *,
                  resume: bool = False, on_progress: ProgressCallback | None = None,
                  on_segment: Callable[[SegmentRecord], None] | None = None) -> VideoResult:
    """Upscale ``job.source`` into ``job.target`` (see the module docstring).

    ``on_progress`` is called from this thread after each upscaled batch. ``on_segment`` is called
    from the encoder thread after each finished segment. An exception it raises ends the job like
    a crash would, and the finished segments stay for a resume. Raises ``VideoReadError`` or
    ``VideoWriteError``; on any failure no file exists under ``job.target`` unless one did before.
    """
    info = _probe(job.source)
    config = _encoder_config(job, settings, info, upscaler.scale)
    job.target.parent.mkdir(parents=True, exist_ok=True)
    work = job.target.with_name(job.target.name + ".partial")
    temporary = job.target.with_name(f".{job.target.stem}.sesr-tmp{job.target.suffix}")
    reencode = _plan_other_streams(job, config, settings.audio)

    # Work folder: reuse finished segments on resume, otherwise start clean.
    identity = _job_identity(job, upscaler, config, settings)
    segment_frames = max(1, round(settings.segment_seconds * float(info.rate)))
    manifest = Manifest.load(work) if resume and work.is_dir() else None
    if manifest is not None and (manifest.job != identity or manifest.segment_frames != segment_frames):
        raise VideoWriteError(job.source, f"work folder {work} belongs to another source or other "
                                          f"settings; delete it or run without --resume")
    if manifest is None:
        if work.exists():
            logger.debug("%s: discarding the earlier work folder %s", job.source, work)
            remove_work_folder(work)
        work.mkdir(parents=True)
        manifest = Manifest(identity, segment_frames)
        manifest.save(work)
    resumed = manifest.frames_done
    if resumed:
        logger.debug("%s: resuming after %d finished frames", job.source, resumed)

    writer = SegmentWriter(work, manifest, config)
    try:
        with _captured_ffmpeg_errors() as errors:
            _run_stages(job, info, upscaler, settings, writer, resumed, on_progress, on_segment, errors)
        if not manifest.segments:
            raise VideoReadError(job.source, "no decodable video frame")
    except VideoError as error:
        # Segments of a damaged source, or a work folder without a finished segment, cannot be
        # resumed from.
        if isinstance(error, VideoReadError) or not manifest.segments:
            remove_work_folder(work)
        raise
    _fix_durations(manifest.segments)
    manifest.save(work)

    # Join into a hidden temporary file, then rename, so the final name only ever names a complete file.
    try:
        notices = join_segments(work, manifest, job.source, temporary, info.time_base, info.rate,
                                settings.audio, reencode)
        os.replace(temporary, job.target)
    except av.FFmpegError as error:
        raise VideoWriteError(job.target, f"writing the output failed ({_ffmpeg_reason(error)}); "
                                          f"finished segments are kept in {work} for --resume") from None
    except SegmentMismatchError as error:
        raise VideoWriteError(job.target, f"{error}; delete {work} and run again") from None
    finally:
        temporary.unlink(missing_ok=True)
    remove_work_folder(work)
    return VideoResult(job.target, manifest.frames_done, resumed, notices)


# FFmpeg's MPEG-PS muxers take H.264 without an error, but FFmpeg 8 reads such a file back with
# a video stream of unknown codec. MPEG-1 and MPEG-2 video are the codecs the format defines.
_MPEG_PS_FORMATS = frozenset({"mpeg", "vob", "dvd", "svcd", "vcd"})
_MPEG_PS_VIDEO = frozenset({"mpeg1video", "mpeg2video"})


@functools.lru_cache(maxsize=None)
def container_holds(suffix: str, encoder: str) -> bool:
    """Return True when an output with ``suffix`` can be written with video ``encoder``.

    Writes one encoded frame into a probe file, because some muxers reject a codec only when
    they write the header (VP9 in MOV) or the first packet. AVI is rejected, because it counts
    frames at one fixed rate and cannot keep the source timestamps.
    """
    try:
        codec = av.Codec(encoder, "w")
    except (av.codec.codec.UnknownCodecError, ValueError):
        return False
    formats = [f.name for f in codec.video_formats or ()]
    pix_fmt = "yuv420p" if not formats or "yuv420p" in formats else formats[0]
    return _try_mux(suffix, encoder, pix_fmt, {}, None, False) is None


def _try_mux(suffix: str, encoder: str, pix_fmt: str, options: dict[str, str], source: Path | None,
             audio: bool, reencode: frozenset[int] = frozenset(), only: int | None = None) -> str | None:
    """Write a 64×64 probe of the output into a temporary file; returns the error or None.

    With ``source``, its audio and subtitle streams are added as ``join_segments`` adds them (or
    only stream ``only``), and the first packet of each copied stream is written.
    """
    with tempfile.TemporaryDirectory(prefix="sesr-probe-") as folder:
        path = Path(folder) / ("probe" + suffix)
        try:
            output = av.open(str(path), "w")
        except (av.FFmpegError, ValueError):
            return f"no container is known for the suffix {suffix!r}"
        copies: list[tuple[object, Iterator[av.Packet]]] = []
        try:
            if output.format.name == "avi":
                return "AVI cannot keep the source timestamps"
            if output.format.name in _MPEG_PS_FORMATS and av.Codec(encoder, "w").name not in _MPEG_PS_VIDEO:
                return "MPEG program streams hold only MPEG-1 and MPEG-2 video"
            if encoder == "libx265":
                options = {"x265-params": "log-level=error", **options}  # no banner per probe
            video = output.add_stream(encoder, rate=25, options=dict(options))
            video.width, video.height, video.pix_fmt = 64, 64, pix_fmt
            tag_hevc(output, video)
            if source is not None:
                with av.open(str(source)) as opened:
                    targets, packets, _, copied = add_other_streams(output, opened, source, audio,
                                                                     reencode, only)
                copies = [(t, p) for t, p, c in zip(targets, packets, copied) if c]
            frame = av.VideoFrame(64, 64, pix_fmt)
            frame.pts = 0
            for packet in video.encode(frame) + video.encode(None):
                # libx265 can return an unset decode time for a one-frame encode, which the MP4
                # muxer rejects. The only frame is a key frame, so it decodes at its pts.
                packet.dts = packet.pts
                output.mux(packet)
            for target, packets in copies:
                packet = next(packets, None)
                if packet is not None:
                    packet.stream = target
                    output.mux(packet)
            output.close()
            return _read_back_error(path, encoder, len(output.streams))
        except (av.FFmpegError, ValueError) as error:
            return _ffmpeg_reason(error) if isinstance(error, av.FFmpegError) else str(error)
        finally:
            for _, packets in copies:
                packets.close()
            try:
                output.close()
            except (av.FFmpegError, ValueError):
                pass


def _read_back_error(path: Path, encoder: str, streams: int) -> str | None:
    """Check that a probe file reads back with its video codec and every stream; returns the
    problem or None."""
    try:
        with av.open(str(path)) as probe:
            video = probe.streams.video
            if not video or video[0].codec_context is None or \
                    video[0].codec_context.codec.id != av.Codec(encoder, "w").id:
                return "the video stream does not read back as written"
            if len(probe.streams) < streams:
                return "a stream does not read back"
    except (av.FFmpegError, ValueError) as error:
        return f"the file does not read back ({error})"
    return None


def _plan_other_streams(job: VideoJob, config: EncoderConfig, audio: bool) -> frozenset[int]:
    """Check that ``job.target`` can be written before decoding; returns the streams to re-encode.

    Each source audio or subtitle stream that the container rejects as a copy is re-encoded
    (audio) or dropped (subtitles) by ``join_segments``.
    """
    suffix = job.target.suffix
    probe = functools.partial(_try_mux, suffix, config.codec, config.pix_fmt, config.options)
    if probe(job.source, audio) is None:
        return frozenset()
    if (error := probe(None, False)) is not None:
        raise VideoWriteError(job.target, f"the {suffix} container cannot hold {_codec_label(config.codec)} "
                                          f"video ({error}); write .mkv or pass another --codec")
    with av.open(str(job.source)) as source:
        indices = [s.index for s in source.streams if s.type == "subtitle" or (audio and s.type == "audio")]
    reencode = frozenset(index for index in indices if probe(job.source, audio, only=index) is not None)
    if (error := probe(job.source, audio, reencode)) is not None:
        raise VideoWriteError(job.target, f"the {suffix} container cannot hold the source's audio "
                                          f"({error}); pass --no-audio or write .mkv")
    return reencode


def _run_stages(job: VideoJob, info: _SourceInfo, upscaler: Upscaler, settings: VideoSettings,
                writer: SegmentWriter, resumed: int, on_progress: ProgressCallback | None,
                on_segment: Callable[[SegmentRecord], None] | None,
                errors: list[tuple[int, str, str]]) -> None:
    """Decode, upscale and encode every frame after the resumed ones, with the stages overlapping."""
    stages = _Stages(depth=2 * settings.batch_frames)
    working = working_format(info.source_format)
    pix_fmt = writer.config.pix_fmt

    def decode() -> None:
        for planes in _decode(job.source, info, resumed, errors):
            if not stages.put(stages.decoded, planes):
                return
        stages.put(stages.decoded, _END)

    def encode() -> None:
        while (item := stages.get(stages.upscaled)) is not _END:
            frame = planes_to_frame(item.y, item.cb, item.cr, working)
            frame.color_range = writer.config.color["color_range"]
            if pix_fmt != working:
                frame = frame.reformat(format=pix_fmt)
            record = writer.write(frame, item.index, item.pts, item.duration)
            if record is not None and on_segment is not None:
                on_segment(record)
        if not stages.stop.is_set():
            record = writer.finish_segment()
            if record is not None and on_segment is not None:
                on_segment(record)

    done = resumed
    total = max(info.total_frames, resumed)
    stages.start(decode, "sesr-decode")
    stages.start(encode, "sesr-encode")
    try:
        finished = False
        while not finished:
            batch: list[PlaneFrame] = []
            while len(batch) < settings.batch_frames:
                item = stages.get(stages.decoded)
                if item is _END:
                    finished = True
                    break
                batch.append(item)
            stages.check()
            for planes in upscale_frames(batch, upscaler.network, info.full_range, settings.tile):
                if not stages.put(stages.upscaled, planes):
                    break
            stages.check()
            done += len(batch)
            if on_progress is not None:
                on_progress(done, max(total, done), info.total_is_estimate)
        stages.put(stages.upscaled, _END)
        for thread in stages.threads:
            thread.join()
        stages.check()
    except av.FFmpegError as error:
        raise VideoWriteError(job.target, f"encoding failed ({_ffmpeg_reason(error)})") from None
    finally:
        stages.shutdown()
        writer.abort()
