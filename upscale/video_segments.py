"""Resumable video encoding: fixed-length segments in a work folder, a manifest, and the final join.

Each segment is an independent encode (it starts with a key frame) of ``segment_frames``
consecutive frames, written to ``seg-NNNNN.mkv`` in the work folder under a temporary name and
renamed when complete. ``manifest.json`` lists the finished segments with the source
timestamps of their frames, so a resumed job starts after the last finished segment.

Timestamps of the joined output come from the manifest. Frames are encoded with their frame
index as pts, because some encoders (MPEG-2) accept only standard time bases, so a segment file
only gives the presentation order of its packets. Decode timestamps are rebuilt as the sorted
presentation times delayed by the encoder's reorder depth. That keeps them increasing across
segment joins and never later than the presentation times.
"""

from __future__ import annotations

import heapq
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av

logger = logging.getLogger(__name__)

__all__ = ["EncoderConfig", "Manifest", "SegmentMismatchError", "SegmentRecord", "SegmentWriter",
           "join_segments", "remove_work_folder"]

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


@dataclass
class SegmentRecord:
    """One finished segment: its file name in the work folder and its frames' source times."""

    file: str
    pts: list[int]
    """Presentation time of each frame in the source stream's time base, in presentation order."""
    durations: list[int]
    """Display duration of each frame, same time base."""


@dataclass
class Manifest:
    """Progress of one job, stored as JSON in the work folder."""

    job: dict
    """Source identity and encode settings; a resume requires an equal dict."""
    segment_frames: int
    segments: list[SegmentRecord] = field(default_factory=list)

    @property
    def frames_done(self) -> int:
        return sum(len(segment.pts) for segment in self.segments)

    def save(self, folder: Path) -> None:
        """Write the manifest atomically, so an interruption leaves the old or the new one."""
        temporary = folder / (MANIFEST_NAME + ".tmp")
        payload = {"version": MANIFEST_VERSION, "job": self.job, "segment_frames": self.segment_frames,
                   "segments": [asdict(segment) for segment in self.segments]}
        temporary.write_text(json.dumps(payload))
        os.replace(temporary, folder / MANIFEST_NAME)

    @classmethod
    def load(cls, folder: Path) -> Manifest | None:
        """Read the manifest of ``folder``, or None when it is missing or unreadable."""
        try:
            payload = json.loads((folder / MANIFEST_NAME).read_text())
            if payload.get("version") != MANIFEST_VERSION:
                return None
            segments = [SegmentRecord(**segment) for segment in payload["segments"]]
            manifest = cls(payload["job"], int(payload["segment_frames"]), segments)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        # A segment file that went missing invalidates it and every later one.
        for position, segment in enumerate(manifest.segments):
            if not (folder / segment.file).is_file():
                del manifest.segments[position:]
                break
        return manifest


class SegmentMismatchError(ValueError):
    """A segment file whose packet count differs from the frames its manifest entry lists."""


@dataclass(frozen=True)
class EncoderConfig:
    """Settings of the video encoder that every segment uses."""

    codec: str
    width: int
    height: int
    pix_fmt: str
    rate: Fraction
    """Frame rate given to the encoder. Its time base is 1 / rate, and frame i gets pts i, because
    some encoders (MPEG-2) accept only a time base of 1 / (a standard rate)."""
    options: dict[str, str]
    color: dict[str, int]
    """``color_range``, ``colorspace``, ``color_primaries`` and ``color_trc`` values of FFmpeg."""
    sample_aspect_ratio: Fraction | None = None
    """Pixel width / pixel height of anamorphic video, the source's, which keeps the display aspect
    at the larger size; None for square pixels."""


class SegmentWriter:
    """Encode frames into consecutive segment files of ``segment_frames`` frames each."""

    def __init__(self, folder: Path, manifest: Manifest, config: EncoderConfig) -> None:
        self.folder = folder
        self.manifest = manifest
        self.config = config
        self._container: av.container.OutputContainer | None = None
        self._stream = None
        self._pts: list[int] = []
        self._durations: list[int] = []

    def _open(self) -> None:
        index = len(self.manifest.segments)
        self._name = f"seg-{index:05d}.mkv"
        self._temporary = self.folder / (self._name + ".tmp")
        config = self.config
        self._container = av.open(str(self._temporary), "w", format="matroska")
        stream = self._container.add_stream(config.codec, rate=config.rate, options=dict(config.options))
        stream.width, stream.height, stream.pix_fmt = config.width, config.height, config.pix_fmt
        stream.codec_context.time_base = 1 / config.rate
        for name, value in config.color.items():
            setattr(stream.codec_context, name, value)
        if config.sample_aspect_ratio is not None:
            stream.codec_context.sample_aspect_ratio = config.sample_aspect_ratio
        self._stream = stream

    def write(self, frame: av.VideoFrame, index: int, pts: int, duration: int) -> SegmentRecord | None:
        """Encode frame ``index`` of the video; ``pts`` and ``duration`` are its source times.

        Returns the segment record when this frame completed a segment.
        """
        if self._container is None:
            self._open()
        frame.pts = index
        frame.time_base = 1 / self.config.rate
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self._pts.append(pts)
        self._durations.append(duration)
        if len(self._pts) == self.manifest.segment_frames:
            return self.finish_segment()
        return None

    def finish_segment(self) -> SegmentRecord | None:
        """Flush the encoder, close the segment file and record it; None when no frame is pending."""
        if self._container is None:
            return None
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        self._container = None
        os.replace(self._temporary, self.folder / self._name)

        record = SegmentRecord(self._name, self._pts, self._durations)
        self.manifest.segments.append(record)
        self.manifest.save(self.folder)
        self._pts, self._durations = [], []
        return record

    def abort(self) -> None:
        """Drop the unfinished segment; finished segments stay for a resume."""
        if self._container is not None:
            try:
                self._container.close()
            except av.FFmpegError as error:
                logger.debug("closing the unfinished segment failed: %s", error)
            self._container = None
            self._temporary.unlink(missing_ok=True)


def _segment_packets(path: Path) -> tuple[list[av.Packet], list[int]]:
    """Packets of a segment in decode order, and each packet's rank in presentation order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [packet for packet in container.demux(stream) if packet.size]
    order = sorted(range(len(packets)), key=lambda i: packets[i].pts)
    ranks = [0] * len(packets)
    for rank, position in enumerate(order):
        ranks[position] = rank
    return packets, ranks


def _video_packets(folder: Path, manifest: Manifest, time_base: Fraction) -> Iterator[av.Packet]:
    """Yield the packets of every segment, in order, with timestamps restored from the manifest."""
    all_pts = [pts for segment in manifest.segments for pts in segment.pts]
    all_durations = [d for segment in manifest.segments for d in segment.durations]

    # First pass: reorder depth = max over packets of (decode position − presentation position).
    layout: list[tuple[Path, int]] = []
    depth = 0
    offset = 0
    for segment in manifest.segments:
        packets, ranks = _segment_packets(folder / segment.file)
        if len(packets) != len(segment.pts):
            raise SegmentMismatchError(f"segment {segment.file} has {len(packets)} packets but the "
                                       f"manifest lists {len(segment.pts)} frames")
        depth = max(depth, *(position - rank for position, rank in enumerate(ranks)))
        layout.append((folder / segment.file, offset))
        offset += len(packets)

    first_step = all_durations[0] if all_durations and all_durations[0] > 0 else 1
    decode_position = 0
    for path, offset in layout:
        packets, ranks = _segment_packets(path)
        for packet, rank in zip(packets, ranks):
            source_index = decode_position - depth
            packet.pts = all_pts[offset + rank]
            packet.dts = all_pts[source_index] if source_index >= 0 else all_pts[0] + source_index * first_step
            packet.duration = all_durations[offset + rank]
            packet.time_base = time_base
            decode_position += 1
            yield packet


def _reencoded_packets(source_path: Path, stream_index: int, encoder_stream) -> Iterator[av.Packet]:
    """Decode one audio stream of the source and encode it with ``encoder_stream``."""
    resampler = av.AudioResampler(format=encoder_stream.codec_context.format.name,
                                  layout=encoder_stream.layout, rate=encoder_stream.rate)
    with av.open(str(source_path)) as source:
        for packet in source.demux(source.streams[stream_index]):
            for frame in packet.decode():
                for converted in resampler.resample(frame):
                    yield from encoder_stream.encode(converted)
    for converted in resampler.resample(None):
        yield from encoder_stream.encode(converted)
    yield from encoder_stream.encode(None)


def _copied_packets(source_path: Path, stream_index: int) -> Iterator[av.Packet]:
    # NOTE: AAC copied from MP4 into Matroska starts about 21 ms later (1024 priming samples at
    # 48 kHz), because Matroska stores no edit list that would skip them.
    with av.open(str(source_path)) as source:
        stream = source.streams[stream_index]
        for packet in source.demux(stream):
            if packet.dts is not None or packet.pts is not None:
                yield packet


def _seconds(packet: av.Packet) -> float:
    time = packet.dts if packet.dts is not None else packet.pts
    return float((time or 0) * packet.time_base)


def _audio_encoder(output: av.container.OutputContainer, rate: int):
    """Add an AAC audio stream, or Opus where the container rejects AAC (WebM); returns it and its name.

    Returns (None, "") when the container takes neither.
    """
    try:
        return output.add_stream("aac", rate=rate), "AAC"
    except ValueError:
        pass
    try:
        # libopus encodes 48, 24, 16, 12 or 8 kHz only, so the resampler converts to 48 kHz.
        return output.add_stream("libopus", rate=48000), "Opus"
    except ValueError:
        return None, ""


# Stream tags that describe a stream to players and are kept on the output stream.
_KEPT_TAGS = ("language", "title")


def _copy_tags(source_stream, target_stream) -> None:
    for name in _KEPT_TAGS:
        value = source_stream.metadata.get(name) or source_stream.metadata.get(name.upper())
        if value:
            target_stream.metadata[name] = value


def tag_hevc(output: av.container.OutputContainer, stream) -> None:
    """Tag HEVC in MP4 and MOV as ``hvc1`` (parameter sets in the sample description), which Apple
    players require. FFmpeg writes ``hev1`` unless the stream's codec tag is set."""
    if stream.codec_context.name in ("hevc", "libx265") and \
            {"mp4", "mov"} & set(output.format.name.split(",")):
        stream.codec_tag = "hvc1"


def add_other_streams(output: av.container.OutputContainer, source: av.container.InputContainer,
                      source_path: Path, audio: bool, reencode: frozenset[int] = frozenset(),
                      only: int | None = None) -> tuple[list, list[Iterator[av.Packet]], list[str], list[bool]]:
    """Add the source's audio and subtitle streams to ``output``, copied where the container allows.

    Audio that the output container rejects, or whose index is in ``reencode``, is re-encoded to
    AAC (Opus for WebM), and such subtitles are dropped. PyAV raises ValueError only for codecs
    the muxer rejects for certain, so ``reencode`` lists the streams that a probe output showed
    to fail later, when the header is written. ``only`` limits the work to one source stream.
    Language and title tags are kept. Data and attachment streams are not carried over.
    Returns the output streams, their packet sources, notices for the user, and for each stream
    whether it is a copy.
    """
    targets: list = []
    sources: list[Iterator[av.Packet]] = []
    notices: list[str] = []
    copied: list[bool] = []
    for stream in source.streams:
        if stream.type not in ("audio", "subtitle") or (stream.type == "audio" and not audio):
            continue
        if only is not None and stream.index != only:
            continue
        # The codec's canonical name ("mp3", "subrip"), not its decoder's ("mp3float", "srt").
        name = stream.codec_context.codec.canonical_name if stream.codec_context is not None else "unknown"
        if stream.index not in reencode:
            try:
                targets.append(output.add_stream_from_template(stream))
                _copy_tags(stream, targets[-1])
                sources.append(_copied_packets(source_path, stream.index))
                copied.append(True)
                continue
            except ValueError:
                pass
        # NOTE: SubRip subtitles are dropped for .mp4 and .webm instead of converted to mov_text
        # or WebVTT.
        if stream.type == "subtitle":
            notices.append(f"subtitle stream {stream.index} ({name}) dropped: the output container "
                           f"cannot hold {name}")
            continue
        encoder, label = _audio_encoder(output, stream.rate)
        if encoder is None:
            notices.append(f"audio stream {stream.index} ({name}) dropped: the output container "
                           f"holds neither {name} nor AAC nor Opus")
            continue
        encoder.layout = stream.layout
        _copy_tags(stream, encoder)
        targets.append(encoder)
        sources.append(_reencoded_packets(source_path, stream.index, encoder))
        copied.append(False)
        notices.append(f"audio stream {stream.index} ({name}) re-encoded to {label}, because the "
                       f"output container cannot hold {name}")
    return targets, sources, notices, copied


def join_segments(folder: Path, manifest: Manifest, source_path: Path, target: Path,
                  video_time_base: Fraction, rate: Fraction, audio: bool,
                  reencode: frozenset[int] = frozenset()) -> list[str]:
    """Mux the segments and the source's audio and subtitles into ``target``, interleaved by time.

    ``target`` is written in place, with the container its suffix names; the caller gives a
    temporary name and renames it. ``rate`` is stored as the average frame rate, which Matroska
    writes as the default frame duration. ``reencode`` is passed to ``add_other_streams``.
    Returns notices about streams re-encoded or dropped.
    """
    with av.open(str(target), "w") as output, av.open(str(source_path)) as source:
        with av.open(str(folder / manifest.segments[0].file)) as first:
            # opaque=True copies the codec parameters as they are, so no encoder of that codec is
            # needed (PyAV 18 otherwise looks one up by the decoder's name, such as libdav1d).
            video = output.add_stream_from_template(first.streams.video[0], opaque=True)
        video.time_base = video_time_base
        video.codec_context.framerate = rate
        tag_hevc(output, video)
        if source.streams.video:
            _copy_tags(source.streams.video[0], video)
        sources: list[Iterator[av.Packet]] = [_video_packets(folder, manifest, video_time_base)]
        targets = [video]

        # Each other stream reads the source on its own, so the merge below can interleave them.
        other_targets, other_sources, notices, _ = add_other_streams(output, source, source_path, audio,
                                                                     reencode)
        targets += other_targets
        sources += other_sources

        # Merge the packet streams by decode time, so the muxer buffers few packets.
        heap: list[tuple[float, int, av.Packet]] = []
        for position, packets in enumerate(sources):
            packet = next(packets, None)
            if packet is not None:
                heapq.heappush(heap, (_seconds(packet), position, packet))
        while heap:
            _, position, packet = heapq.heappop(heap)
            packet.stream = targets[position]
            output.mux(packet)
            following = next(sources[position], None)
            if following is not None:
                heapq.heappush(heap, (_seconds(following), position, following))
    return notices


def remove_work_folder(folder: Path) -> None:
    """Delete a work folder and everything in it."""
    shutil.rmtree(folder, ignore_errors=True)
