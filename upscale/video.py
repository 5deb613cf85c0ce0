"""Upscale video files with PyAV (FFmpeg): timing, audio, subtitles, rotation and color tags kept.

A job runs three stages at once, joined by bounded queues: a decoder thread turns frames into
8-bit YCbCr planes (``upscale.video_frames``), the calling thread upscales batches of frames, and
an encoder thread writes them into fixed-length segments (``upscale.video_segments``). When
every frame is encoded, the segments and the source's audio and subtitle streams are muxed into
a hidden temporary file beside the output, which is then renamed to the output name. The work
folder ``OUTPUT.partial/`` keeps finished segments until then, so ``resume=True`` continues an
interrupted job after its last finished segment.

Frame times are the source's presentation timestamps, unchanged, so a constant frame rate such
as 30000/1001 and the frame count are kept, and variable-rate input keeps its timestamps.
Rotated sources (a display matrix, as phones write) are rotated in the pixels, and the output
carries no display matrix.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import av

from .api import Upscaler
from .video_frames import (AVCOL_RANGE_JPEG, AVCOL_RANGE_MPEG, PlaneFrame, frame_to_planes,
                           is_full_range, planes_to_frame, upscale_frames, working_format)
from .video_segments import (EncoderConfig, Manifest, SegmentMismatchError, SegmentRecord,
                             SegmentWriter, join_segments, remove_work_folder)

logger = logging.getLogger(__name__)

__all__ = ["VideoError", "VideoReadError", "VideoWriteError", "VideoSettings", "VideoResult",
           "VideoJob", "VideoPlan", "VIDEO_SUFFIXES", "CODEC_ALIASES", "plan_video_jobs",
           "upscale_video", "available_encoders"]

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".mts",
                            ".m2ts", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp", ".ogv", ".nut"})

# Short names accepted by --codec, mapped to FFmpeg encoder names in PyAV's wheels.
CODEC_ALIASES = {"h264": "libx264", "hevc": "libx265", "h265": "libx265", "vp9": "libvpx-vp9",
                 "vp8": "libvpx", "av1": "libsvtav1"}

# Encoders that take a CRF and a named preset through their private options, with their defaults.
# CRF 18 (x264) and 20 (x265) are near-transparent, and CRF 30 is the usual VP9/SVT-AV1
# starting point.
_DEFAULT_CRF = {"libx264": 18, "libx265": 20, "libvpx-vp9": 30, "libvpx": 10, "libsvtav1": 30}
_PRESET_ENCODERS = frozenset({"libx264", "libx265", "libsvtav1"})


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
    """Jobs to run, plus inputs that failed before any frame was read."""

    jobs: list[VideoJob] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


ProgressCallback = Callable[[int, int, bool], None]
"""``(frames done, total frames, whether the total is an estimate)``."""


def available_encoders() -> list[str]:
    """Names of the video encoders in the installed PyAV build.

    Hardware encoders (``*_nvenc``, ``*_qsv``, ``*_amf``, ``*_v4l2m2m``) are listed but open only
    on machines with that hardware and driver.
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
    return names


# Job planning.

def plan_video_jobs(inputs: list[str], output: Path, *, overwrite: bool = False) -> VideoPlan:
    """Turn command-line inputs (files and folders of videos) into jobs.

    ``output`` is the output file when there is one input file and ``output`` has a video suffix
    and is not a folder. Otherwise it is a folder and each output keeps its input's file name.
    Files named directly are tried whatever their suffix; in folders only files with a suffix in
    ``VIDEO_SUFFIXES`` are taken, hidden files are skipped.
    """
    plan = VideoPlan()
    sources: list[Path] = []
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            sources.extend(p for p in sorted(path.iterdir())
                           if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in VIDEO_SUFFIXES)
        elif path.is_file():
            sources.append(path)
        else:
            plan.failed.append((path, "not found; check the path"))

    single_file = (len(inputs) == 1 and len(sources) == 1 and Path(inputs[0]).is_file()
                   and not output.is_dir() and output.suffix.lower() in VIDEO_SUFFIXES)
    resolved_sources = {source.resolve() for source in sources}
    seen: dict[Path, Path] = {}
    for source in sources:
        target = output if single_file else output / source.name
        resolved = target.resolve()
        if resolved in resolved_sources:
            plan.failed.append((source, f"output {target} would overwrite an input file; "
                                        f"choose another output"))
        elif resolved in seen:
            plan.failed.append((source, f"output name collision with {seen[resolved]}: both would "
                                        f"write {target}; write to separate folders"))
        elif target.exists() and not overwrite:
            plan.failed.append((source, f"output {target} exists; pass --overwrite"))
        else:
            seen[resolved] = source
            plan.jobs.append(VideoJob(source, target))
    return plan


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


def _probe(path: Path) -> _SourceInfo:
    """Open ``path`` and decode its first frame to learn the format, rotation and color tags."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoReadError(path, "no video stream; pass a video file")
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
            if estimate:
                # Matroska and WebM store no frame count: estimate it from duration × rate.
                seconds = (float(stream.duration * time_base) if stream.duration
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
            return _SourceInfo(width, height, first.format.name, Fraction(rate), Fraction(time_base),
                               total, estimate, rotation, full_range, color)
    except av.FFmpegError as error:
        raise VideoReadError(path, f"not a readable video ({_ffmpeg_reason(error)}); check that the "
                                   f"file is complete and is a video") from None
    except VideoError:
        raise
    except ValueError as error:
        # PyAV raises ValueError (UnknownCodecError) for a stream without a decoder in this build.
        raise VideoReadError(path, f"unsupported video codec ({error}); convert the file with FFmpeg "
                                   f"to a common codec such as H.264 first") from None


def _ffmpeg_reason(error: av.FFmpegError) -> str:
    return error.strerror or type(error).__name__


# Encoder settings.

def _encoder_config(job: VideoJob, settings: VideoSettings, info: _SourceInfo, scale: int) -> EncoderConfig:
    codec_name = settings.codec or ("libvpx-vp9" if job.target.suffix.lower() == ".webm" else "libx264")
    codec_name = CODEC_ALIASES.get(codec_name, codec_name)
    try:
        codec = av.Codec(codec_name, "w")
    except (av.codec.codec.UnknownCodecError, ValueError):
        raise VideoWriteError(job.target, f"encoder {codec_name!r} is not in this PyAV build; "
                                          f"`sesr video --list-codecs` lists those available") from None
    if codec.type != "video":
        raise VideoWriteError(job.target, f"{codec_name!r} is not a video encoder")

    working = working_format(info.source_format)
    formats = [f.name for f in codec.video_formats or ()]
    pix_fmt = settings.pix_fmt or (working if not formats or working in formats else formats[0])
    if formats and pix_fmt not in formats:
        raise VideoWriteError(job.target, f"encoder {codec_name} does not take --pix-fmt {pix_fmt}; "
                                          f"choose one of {', '.join(formats)}")

    options: dict[str, str] = {}
    crf = settings.crf if settings.crf is not None else _DEFAULT_CRF.get(codec_name)
    if crf is not None:
        if codec_name not in _DEFAULT_CRF:
            raise VideoWriteError(job.target, f"encoder {codec_name} has no CRF setting; leave --crf out")
        options["crf"] = str(crf)
        if codec_name in ("libvpx-vp9", "libvpx"):
            options["b"] = "0"  # libvpx uses constant quality only when the bit-rate target is 0
    if codec_name == "libx265":
        options["x265-params"] = "log-level=error"  # x265 prints its settings for every segment otherwise
    if settings.preset is not None:
        if codec_name not in _PRESET_ENCODERS:
            raise VideoWriteError(job.target, f"encoder {codec_name} has no --preset; leave it out")
        options["preset"] = settings.preset

    color = dict(info.color)
    color["color_range"] = AVCOL_RANGE_JPEG if info.full_range else AVCOL_RANGE_MPEG
    return EncoderConfig(codec_name, info.width * scale, info.height * scale, pix_fmt, info.rate,
                         options, color)


def _job_identity(job: VideoJob, upscaler: Upscaler, config: EncoderConfig, settings: VideoSettings) -> dict:
    """Everything that must be equal for finished segments to be reused by a resume."""
    stat = job.source.stat()
    weights = upscaler.weights
    digest = hashlib.sha256(weights.head.weight.tobytes() + weights.tail.weight.tobytes()).hexdigest()[:16]
    return {"source": str(job.source.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "model": f"{upscaler.descriptor.variant}-x{upscaler.scale}", "weights": digest,
            "backend": upscaler.backend.value, "codec": config.codec, "options": config.options,
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


def _decode(path: Path, info: _SourceInfo, skip: int) -> Iterator[PlaneFrame]:
    """Decode every frame of ``path`` from frame ``skip`` on, with strictly increasing timestamps.

    NOTE: frames before ``skip`` are decoded and dropped instead of seeking, because a seek lands
    on a key frame and frame indices would have to be recovered from timestamps.
    """
    step = max(1, round(1 / (info.rate * info.time_base)))
    working = working_format(info.source_format)
    previous: int | None = None
    index = 0
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                if frame.pts is not None:
                    pts = frame.pts
                else:
                    pts = 0 if previous is None else previous + step
                # Decoders can repeat a timestamp on broken input; the muxers need increasing ones.
                if previous is not None and pts <= previous:
                    pts = previous + 1
                previous = pts
                if index >= skip:
                    duration = frame.duration if frame.duration and frame.duration > 0 else step
                    yield frame_to_planes(frame, working, info.full_range, info.rotation, index, pts, duration)
                index += 1
    except av.FFmpegError as error:
        raise VideoReadError(path, f"decoding failed after frame {index} ({_ffmpeg_reason(error)}); "
                                   f"the file may be truncated or damaged") from None
    # NOTE: edit lists can make the stored count differ from the frames decoded in a complete
    # file, so a shortfall is logged rather than raised.
    if not info.total_is_estimate and index < info.total_frames:
        logger.warning("%s: decoded %d frames but the container lists %d; the file may be truncated",
                       path, index, info.total_frames)


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
    _check_container(job.target, temporary, config.codec)

    # Work folder: reuse finished segments on resume, otherwise start clean.
    identity = _job_identity(job, upscaler, config, settings)
    segment_frames = max(1, round(settings.segment_seconds * float(info.rate)))
    manifest = Manifest.load(work) if resume and work.is_dir() else None
    if manifest is not None and (manifest.job != identity or manifest.segment_frames != segment_frames):
        raise VideoWriteError(job.source, f"work folder {work} belongs to another source or other "
                                          f"settings; delete it or run without --resume")
    if manifest is None:
        if work.exists():
            logger.info("%s: discarding the earlier work folder %s", job.source, work)
            remove_work_folder(work)
        work.mkdir(parents=True)
        manifest = Manifest(identity, segment_frames)
        manifest.save(work)
    resumed = manifest.frames_done
    if resumed:
        logger.info("%s: resuming after %d finished frames", job.source, resumed)

    writer = SegmentWriter(work, manifest, config)
    try:
        _run_stages(job, info, upscaler, settings, writer, resumed, on_progress, on_segment)
        if not manifest.segments:
            raise VideoReadError(job.source, "no decodable video frame")
    except VideoError:
        # A work folder without a finished segment has nothing to resume from.
        if not manifest.segments:
            remove_work_folder(work)
        raise
    _fix_durations(manifest.segments)
    manifest.save(work)

    # Join into a hidden temporary file, then rename, so the final name only ever names a complete file.
    try:
        notices = join_segments(work, manifest, job.source, temporary, info.time_base, info.rate,
                                settings.audio)
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


def _check_container(target: Path, temporary: Path, codec: str) -> None:
    """Check that the output suffix names a container that can hold ``codec``.

    Adding a stream raises ValueError only when the muxer rejects the codec for certain, so
    containers with short codec lists (MPEG-TS) still take what they can mux.
    """
    try:
        probe = av.open(str(temporary), "w")
    except (av.FFmpegError, ValueError):
        temporary.unlink(missing_ok=True)
        raise VideoWriteError(target, f"unknown container for suffix {target.suffix!r}; "
                                      f"use .mp4, .mkv, .mov or .webm") from None
    try:
        if probe.format.name == "avi":
            # AVI counts frames at one fixed rate, so it cannot keep the source timestamps.
            raise VideoWriteError(target, "AVI output cannot keep the source timestamps; use .mkv or .mp4")
        try:
            probe.add_stream(codec)
        except ValueError:
            raise VideoWriteError(target, f"the {target.suffix} container cannot hold {codec}; "
                                          f"use .mkv or another --codec") from None
    finally:
        probe.close()
        temporary.unlink(missing_ok=True)


def _run_stages(job: VideoJob, info: _SourceInfo, upscaler: Upscaler, settings: VideoSettings,
                writer: SegmentWriter, resumed: int, on_progress: ProgressCallback | None,
                on_segment: Callable[[SegmentRecord], None] | None) -> None:
    """Decode, upscale and encode every frame after the resumed ones, with the stages overlapping."""
    stages = _Stages(depth=2 * settings.batch_frames)
    working = working_format(info.source_format)
    pix_fmt = writer.config.pix_fmt

    def decode() -> None:
        for planes in _decode(job.source, info, resumed):
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
