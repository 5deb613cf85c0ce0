"""``sesr video`` and ``upscale.video`` on small clips made here with PyAV.

Clips are 64×48 with 12 frames (4:2:0), 0.4 s, and a 440 Hz sine track when audio is asked for.
The network is a random ×2 sesr-m3 from conftest on one thread, so the tests do not depend on
shipped weights. Segments are 0.1 s long, so every clip spans several segments.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from typer.testing import CliRunner, Result

av = pytest.importorskip("av", reason="sesr video needs PyAV, installed on Python 3.11 and newer")

from cli import app  # noqa: E402 (after the PyAV check, like every import below)
from conftest import make_random_weights  # noqa: E402
from models import save_weights  # noqa: E402
from upscale import Upscaler  # noqa: E402
from upscale.color import video_luma_to_y, y_to_video_luma  # noqa: E402
from upscale.pipeline import upscale_luma, upscale_luma_batch  # noqa: E402
from upscale.video import (ExistingPolicy, VideoJob, VideoReadError, VideoSettings,  # noqa: E402
                           VideoWriteError, check_encoder_settings, container_holds, plan_video_jobs,
                           upscale_video)

WIDTH, HEIGHT, FRAMES = 64, 48, 12
NTSC = Fraction(30000, 1001)
SAMPLE_RATE = 48000
SETTINGS = VideoSettings(segment_seconds=0.1)
# Frames per segment at 30000/1001 fps: round(0.1 × 29.97) = 3.
SEGMENT_FRAMES = 3


# Helpers.

def _frame_pixels(index: int) -> np.ndarray:
    """RGB frame that differs per index, with a white stripe on the left to show orientation."""
    rng = np.random.default_rng(index)
    pixels = rng.integers(40, 200, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    pixels[:, :8] = 255
    return pixels


def make_clip(path: Path, *, codec: str = "libx264", rate: Fraction = NTSC, frames: int = FRAMES,
              audio: str | None = "aac", rotation: int | None = None, pts: list[int] | None = None,
              time_base: Fraction | None = None, full_range: bool = False, subtitle: bool = False,
              tags: dict[str, dict[str, str]] | None = None) -> Path:
    """Write a clip with a sine-tone audio track of the same duration as the video.

    ``subtitle`` adds a SubRip stream with one cue, "hello", from 0 to 200 ms. ``tags`` maps a
    stream type ("audio", "subtitle") to the metadata of that stream.
    """
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=rate)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        if time_base is not None:
            video.codec_context.time_base = time_base
        video.codec_context.colorspace = 1          # BT.709
        video.codec_context.color_primaries = 1
        video.codec_context.color_trc = 1
        video.codec_context.color_range = 2 if full_range else 1
        if rotation is not None:
            video.set_display_rotation(rotation)
        subtitles = container.add_mux_stream("subrip") if subtitle else None
        sound = None
        if audio is not None:
            sound = container.add_stream(audio, rate=SAMPLE_RATE)
            sound.layout = "mono"
        for stream in container.streams:
            stream.metadata.update((tags or {}).get(stream.type, {}))

        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(_frame_pixels(index), format="rgb24")
            frame = frame.reformat(format="yuv420p", dst_color_range=2 if full_range else 1)
            frame.pts = pts[index] if pts is not None else index
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)

        if sound is not None:
            samples = round(frames / rate * SAMPLE_RATE)
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / SAMPLE_RATE)).astype(np.float32)
            step = sound.codec_context.frame_size or 1024
            for start in range(0, samples, step):
                chunk = av.AudioFrame.from_ndarray(tone[None, start:start + step].copy(), format="flt",
                                                   layout="mono")
                chunk.sample_rate, chunk.pts = SAMPLE_RATE, start
                for packet in sound.encode(chunk):
                    container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)

        if subtitles is not None:
            cue = av.Packet(b"hello")
            cue.stream, cue.time_base = subtitles, Fraction(1, 1000)
            cue.pts, cue.dts, cue.duration = 0, 0, 200
            container.mux(cue)
    return path


@dataclass(frozen=True)
class StreamFields:
    """Fields of a video stream, copied before its container closes."""

    frames: int
    average_rate: Fraction | None
    time_base: Fraction
    width: int
    height: int


def _read_video(path: Path) -> tuple[list[np.ndarray], list[int], StreamFields]:
    """Decoded frames as yuv420p arrays, their pts, and the stream's fields."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fields = StreamFields(stream.frames, stream.average_rate, stream.time_base, stream.width, stream.height)
        frames = list(container.decode(stream))
    return [f.to_ndarray(format="yuv420p") for f in frames], [f.pts for f in frames], fields


def _stream_seconds(path: Path, kind: str) -> list[float]:
    """End time in seconds of each stream of ``kind``, from its last packet's pts + duration."""
    ends = []
    with av.open(str(path)) as container:
        for stream in [s for s in container.streams if s.type == kind]:
            end = 0.0
            for packet in container.demux(stream):
                if packet.pts is not None:
                    end = max(end, float((packet.pts + packet.duration) * packet.time_base))
            ends.append(end)
            container.seek(0)
    return ends


def _codec_names(path: Path, kind: str) -> list[str]:
    with av.open(str(path)) as container:
        return [s.codec_context.name for s in container.streams if s.type == kind]


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """One random ×2 sesr-m3 weights file shared by the tests of this module."""
    path = tmp_path_factory.mktemp("weights") / "sesr-m3-x2.safetensors"
    save_weights(make_random_weights(), path)
    return path


@pytest.fixture
def upscaler(weights) -> Upscaler:
    return Upscaler(weights=weights, threads=1)


def _run(weights: Path, *args: object) -> Result:
    """Run ``sesr video`` with 0.1 s segments on one onnxruntime thread."""
    return CliRunner().invoke(app, ["video", *(str(a) for a in args), "--weights", str(weights),
                                    "--threads", "1", "--segment-seconds", "0.1"])


def _describe(result: Result) -> str:
    return f"exit code {result.exit_code}, stderr {result.stderr!r}, exception {result.exception!r}"


# Library pieces.

def test_luma_batch_matches_single_frames(random_weights):
    from upscale.backends import open_backend

    network = open_backend(random_weights, threads=1)
    luma = np.random.default_rng(3).uniform(0.1, 0.9, (3, 40, 56)).astype(np.float32)
    batch = upscale_luma_batch(luma, network, tile=16)
    for index in range(3):
        single = upscale_luma(luma[index], network)
        error = np.abs(batch[index] - single)
        assert error.max() < 1e-5, f"frame {index}: max error {error.max():.2e}, mean {error.mean():.2e}"


def test_video_luma_range_mapping():
    codes = np.array([0, 16, 128, 235, 255], dtype=np.uint8)
    full = video_luma_to_y(codes, full_range=True) * 255
    limited = video_luma_to_y(codes, full_range=False) * 255
    # Full range maps black 0 → 16 and white 255 → 235: 16 + 219·code/255.
    np.testing.assert_allclose(full, [16, 16 + 219 * 16 / 255, 16 + 219 * 128 / 255, 16 + 219 * 235 / 255, 235],
                               atol=1e-4)
    np.testing.assert_allclose(limited, codes.astype(np.float32), atol=1e-4)
    for full_range in (True, False):
        back = y_to_video_luma(video_luma_to_y(codes, full_range), full_range) * 255
        np.testing.assert_allclose(back, codes.astype(np.float32), atol=1e-3)


def test_plan_rejects_existing_and_input(tmp_path):
    source = make_clip(tmp_path / "a.mp4", audio=None)
    existing = tmp_path / "out.mp4"
    existing.write_bytes(b"old")
    plan = plan_video_jobs([str(source)], existing)
    assert plan.jobs == []
    assert "pass --overwrite" in plan.failed[0][1]
    plan = plan_video_jobs([str(source)], source, existing=ExistingPolicy.OVERWRITE)
    assert plan.jobs == []
    assert "overwrite an input" in plan.failed[0][1]
    assert existing.read_bytes() == b"old"


# Timing, audio and streams.

def test_ntsc_rate_frames_and_audio(tmp_path, upscaler):
    source = make_clip(tmp_path / "in.mp4")
    target = tmp_path / "out.mp4"
    result = upscale_video(VideoJob(source, target), upscaler, SETTINGS)

    frames, pts, stream = _read_video(target)
    _, source_pts, source_stream = _read_video(source)
    assert result.frames == FRAMES
    assert len(frames) == FRAMES
    assert stream.frames == FRAMES
    assert stream.average_rate == NTSC
    assert (stream.width, stream.height) == (2 * WIDTH, 2 * HEIGHT)
    assert [p * stream.time_base for p in pts] == [p * source_stream.time_base for p in source_pts]
    video_end = _stream_seconds(target, "video")[0]
    assert abs(video_end - _stream_seconds(source, "video")[0]) < 1 / 29.97
    assert _codec_names(target, "audio") == ["aac"]
    audio_end = _stream_seconds(target, "audio")[0]
    assert abs(audio_end - video_end) < 0.05, f"audio ends at {audio_end:.3f} s, video at {video_end:.3f} s"
    assert not (tmp_path / "out.mp4.partial").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out.mp4"]


class NearestNetwork:
    """×2 nearest-neighbour stand-in for the network, so output luma is predictable exactly."""

    scale = 2
    receptive_radius = 2

    def __call__(self, luma: np.ndarray) -> np.ndarray:
        return luma.repeat(2, axis=2).repeat(2, axis=3)


def test_color_tags_and_full_range(tmp_path, upscaler):
    source = make_clip(tmp_path / "in.mkv", audio=None, full_range=True)
    target = tmp_path / "out.mkv"
    upscale_video(VideoJob(source, target), upscaler, SETTINGS)
    with av.open(str(target)) as container:
        context = container.streams.video[0].codec_context
        frame = next(container.decode(video=0))
    assert context.colorspace == 1
    assert context.color_primaries == 1
    assert context.color_trc == 1
    assert frame.color_range == 2


def test_full_range_black_reaches_network_as_studio_black(tmp_path, upscaler):
    seen: list[float] = []

    class RecordingNetwork(NearestNetwork):
        """Nearest-neighbour stand-in that records the smallest luma it receives."""

        def __call__(self, luma: np.ndarray) -> np.ndarray:
            seen.append(float(luma.min()))
            return super().__call__(luma)

    upscaler.network = RecordingNetwork()
    source = tmp_path / "black.mkv"
    with av.open(str(source), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.color_range = 2
        for index in range(2):
            frame = av.VideoFrame.from_ndarray(np.zeros((HEIGHT * 3 // 2, WIDTH), np.uint8), format="yuv420p")
            frame.color_range = 2
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    target = tmp_path / "out.mkv"
    upscale_video(VideoJob(source, target), upscaler, VideoSettings(codec="ffv1"))

    assert min(seen) == pytest.approx(16 / 255, abs=1e-6)
    frames, _, _ = _read_video(target)
    assert frames[0][:2 * HEIGHT].max() == 0, "full-range black must come back as code 0"


@pytest.mark.parametrize("codec, pix_fmt", [("libx264", "yuv420p"), ("mjpeg", "yuvj420p"),
                                            ("ffv1", "yuv422p"), ("ffv1", "yuv444p")])
def test_luma_codes_survive_each_layout(tmp_path, upscaler, codec, pix_fmt):
    upscaler.network = NearestNetwork()
    source = tmp_path / "in.mkv"
    with av.open(str(source), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, pix_fmt
        for index in range(3):
            frame = av.VideoFrame.from_ndarray(_frame_pixels(index), format="rgb24").reformat(format=pix_fmt)
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    target = tmp_path / "out.mkv"
    upscale_video(VideoJob(source, target), upscaler, VideoSettings(codec="ffv1"))

    with av.open(str(source)) as container:
        source_frames = list(container.decode(video=0))
    with av.open(str(target)) as container:
        output_frames = list(container.decode(video=0))
    assert len(output_frames) == 3
    for index, (before, after) in enumerate(zip(source_frames, output_frames)):
        expected = np.asarray(before.planes[0]).reshape(HEIGHT, -1)[:, :WIDTH].repeat(2, 0).repeat(2, 1)
        got = np.asarray(after.planes[0]).reshape(2 * HEIGHT, -1)[:, :2 * WIDTH]
        assert np.array_equal(got, expected), f"frame {index}: max difference {np.abs(got.astype(int) - expected).max()}"
        assert after.color_range == (2 if pix_fmt == "yuvj420p" else 1)


def test_variable_frame_rate_keeps_timestamps(tmp_path, upscaler):
    irregular = [0, 1000, 1500, 3000, 3100, 5000, 6000, 6500]
    source = make_clip(tmp_path / "vfr.mp4", frames=len(irregular), pts=irregular,
                       time_base=Fraction(1, 10000), rate=Fraction(20), audio=None)
    target = tmp_path / "out.mp4"
    upscale_video(VideoJob(source, target), upscaler, VideoSettings(segment_seconds=0.15))

    _, pts, stream = _read_video(target)
    _, source_pts, source_stream = _read_video(source)
    assert [p * stream.time_base for p in pts] == [p * source_stream.time_base for p in source_pts]


def test_rotation_is_applied_to_pixels(tmp_path, upscaler):
    source = make_clip(tmp_path / "phone.mp4", rotation=90, audio=None)
    target = tmp_path / "out.mp4"
    upscale_video(VideoJob(source, target), upscaler, SETTINGS)

    with av.open(str(target)) as container:
        frame = next(container.decode(video=0))
    assert frame.rotation == 0
    assert (frame.width, frame.height) == (2 * HEIGHT, 2 * WIDTH)
    # 90° counterclockwise moves the white left stripe (8 columns) to the bottom 8 rows, 16 after ×2.
    luma = frame.to_ndarray(format="gray")
    assert luma[-12:].mean() > 200, f"bottom rows mean {luma[-12:].mean():.1f}"
    assert luma[:-20].mean() < 200, f"other rows mean {luma[:-20].mean():.1f}"


def test_mkv_and_webm_without_frame_count(tmp_path, upscaler):
    for name, codec, audio in (("in.mkv", "libx264", "aac"), ("in.webm", "libvpx-vp9", "libopus")):
        source = make_clip(tmp_path / name, codec=codec, audio=audio)
        with av.open(str(source)) as container:
            assert container.streams.video[0].frames == 0, f"{name} should store no frame count"
        reports: list[tuple[int, int, bool]] = []
        target = tmp_path / f"out-{name}"
        upscale_video(VideoJob(source, target), upscaler, SETTINGS,
                      on_progress=lambda done, total, estimated: reports.append((done, total, estimated)))

        frames, _, fields = _read_video(target)
        assert len(frames) == FRAMES, name
        assert fields.average_rate == NTSC, name
        assert reports[-1][0] == FRAMES, name
        assert all(estimated for _, _, estimated in reports), name
        # The estimate is the duration (about 0.4 s) × 29.97 fps.
        assert abs(reports[0][1] - FRAMES) <= 1, f"{name}: estimated total {reports[0][1]}"
        assert _codec_names(target, "audio") == [{"aac": "aac", "libopus": "opus"}[audio]], name


def test_video_without_audio_and_no_audio(tmp_path, upscaler):
    silent = make_clip(tmp_path / "silent.mp4", audio=None)
    upscale_video(VideoJob(silent, tmp_path / "a.mp4"), upscaler, SETTINGS)
    assert _codec_names(tmp_path / "a.mp4", "audio") == []
    assert len(_read_video(tmp_path / "a.mp4")[0]) == FRAMES

    loud = make_clip(tmp_path / "loud.mp4")
    upscale_video(VideoJob(loud, tmp_path / "b.mp4"), upscaler, VideoSettings(segment_seconds=0.1, audio=False))
    assert _codec_names(tmp_path / "b.mp4", "audio") == []


@pytest.mark.parametrize("source_name, audio, target_name, expected", [
    ("in.mkv", "wavpack", "out.mp4", "aac"),     # MP4 rejects WavPack
    ("in.mp4", "aac", "out.webm", "opus"),       # WebM rejects AAC, too
])
def test_audio_reencoded_when_container_rejects(tmp_path, upscaler, source_name, audio, target_name, expected):
    source = make_clip(tmp_path / source_name, audio=audio)
    target = tmp_path / target_name
    result = upscale_video(VideoJob(source, target), upscaler, VideoSettings(segment_seconds=0.1, codec="vp9"))

    assert _codec_names(target, "audio") == [expected]
    label = {"aac": "AAC", "opus": "Opus"}[expected]
    assert any(f"re-encoded to {label}" in notice for notice in result.notices), result.notices
    audio_end, video_end = _stream_seconds(target, "audio")[0], _stream_seconds(target, "video")[0]
    assert abs(audio_end - video_end) < 0.05, f"audio ends at {audio_end:.3f} s, video at {video_end:.3f} s"


def test_subtitles_copied_or_dropped(tmp_path, upscaler):
    source = make_clip(tmp_path / "in.mkv", subtitle=True)
    copied = upscale_video(VideoJob(source, tmp_path / "out.mkv"), upscaler, SETTINGS)
    with av.open(str(tmp_path / "out.mkv")) as container:
        cues = [bytes(p) for p in container.demux(container.streams.subtitles[0]) if p.size]
    assert cues == [b"hello"]
    assert copied.notices == []

    # MP4 holds only mov_text subtitles, so SubRip is dropped with a notice.
    dropped = upscale_video(VideoJob(source, tmp_path / "out.mp4"), upscaler, SETTINGS)
    assert _codec_names(tmp_path / "out.mp4", "subtitle") == []
    assert any("subtitle stream" in notice and "dropped" in notice for notice in dropped.notices), dropped.notices
    assert _codec_names(tmp_path / "out.mp4", "audio") == ["aac"]


# Interruption and resume.

class _Crash(RuntimeError):
    pass


def test_resume_after_crash_matches_clean_run(tmp_path, upscaler):
    source = make_clip(tmp_path / "in.mp4")
    clean = tmp_path / "clean.mp4"
    upscale_video(VideoJob(source, clean), upscaler, SETTINGS)

    target = tmp_path / "resumed.mp4"
    finished: list[str] = []

    def crash_after_two(record) -> None:
        finished.append(record.file)
        if len(finished) == 2:
            raise _Crash("simulated crash")

    with pytest.raises(_Crash):
        upscale_video(VideoJob(source, target), upscaler, SETTINGS, on_segment=crash_after_two)
    assert not target.exists()
    assert sorted(p.name for p in (tmp_path / "resumed.mp4.partial").iterdir()) == \
        ["manifest.json", "seg-00000.mkv", "seg-00001.mkv"]

    result = upscale_video(VideoJob(source, target), upscaler, SETTINGS, resume=True)
    assert result.resumed_frames == 2 * SEGMENT_FRAMES
    clean_frames, clean_pts, clean_stream = _read_video(clean)
    frames, pts, stream = _read_video(target)
    assert len(frames) == len(clean_frames) == FRAMES
    assert pts == clean_pts
    assert stream.average_rate == clean_stream.average_rate
    for index, (got, expected) in enumerate(zip(frames, clean_frames)):
        assert np.array_equal(got, expected), f"frame {index} differs from the clean run"
    assert _stream_seconds(target, "audio") == _stream_seconds(clean, "audio")
    assert not (tmp_path / "resumed.mp4.partial").exists()


def test_interrupt_leaves_no_file_under_final_name(tmp_path, upscaler):
    source = make_clip(tmp_path / "in.mp4", audio=None)
    target = tmp_path / "out.mp4"

    def interrupt(done, total, estimated) -> None:
        if done >= 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        upscale_video(VideoJob(source, target), upscaler, VideoSettings(segment_seconds=0.1, batch_frames=2),
                      on_progress=interrupt)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out.mp4.partial"]
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / "out.mp4.partial").iterdir())


def test_resume_rejects_other_settings(tmp_path, upscaler):
    source = make_clip(tmp_path / "in.mp4", audio=None)
    target = tmp_path / "out.mp4"
    with pytest.raises(_Crash):
        upscale_video(VideoJob(source, target), upscaler, SETTINGS,
                      on_segment=lambda record: (_ for _ in ()).throw(_Crash()))
    with pytest.raises(VideoWriteError, match="belongs to another source or other settings"):
        upscale_video(VideoJob(source, target), upscaler, VideoSettings(segment_seconds=0.1, crf=30),
                      resume=True)
    assert not target.exists()


# Command line.

def test_cli_bad_inputs_fail_and_others_run(tmp_path, weights):
    good = make_clip(tmp_path / "good.mp4", audio=None)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[:2000])
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    out = tmp_path / "out"

    result = _run(weights, truncated, good, text, "-o", out)
    assert result.exit_code == 1, _describe(result)
    assert sorted(p.name for p in out.iterdir()) == ["good.mp4"]
    lines = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
    assert len(lines) == 2, result.stderr
    assert str(truncated) in result.stderr
    assert str(text) in result.stderr
    assert "not a readable video" in result.stderr


def test_cli_folder_and_overwrite(tmp_path, weights):
    folder = tmp_path / "clips"
    folder.mkdir()
    make_clip(folder / "a.mp4", audio=None, frames=4)
    make_clip(folder / "b.mkv", audio=None, frames=4)
    (folder / "readme.txt").write_text("skipped")
    out = tmp_path / "out"

    result = _run(weights, folder, "-o", out, "--codec", "ffv1", "--quiet")
    assert result.exit_code == 0, _describe(result)
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4", "b.mkv"]
    assert _codec_names(out / "b.mkv", "video") == ["ffv1"]

    again = _run(weights, folder, "-o", out, "--quiet")
    assert again.exit_code == 1, _describe(again)
    assert "pass --overwrite" in again.stderr
    assert _run(weights, folder, "-o", out, "--quiet", "--overwrite").exit_code == 0


@pytest.mark.parametrize("options, message", [
    (["--codec", "nosuchcodec"], "unknown --codec 'nosuchcodec'"),
    (["--preset", "bogus"], "invalid --preset 'bogus' for h264: choose one of ultrafast"),
    (["--pix-fmt", "bogus"], "invalid --pix-fmt 'bogus' for h264: choose one of yuv420p"),
    (["--crf", "52"], "--crf 52 is out of range for h264: use 0 to 51"),
    (["--codec", "vp9", "--crf", "64"], "--crf 64 is out of range for vp9: use 0 to 63"),
    (["--codec", "av1", "--preset", "99"], "invalid --preset '99' for av1"),
    (["--codec", "ffv1", "--crf", "20"], "ffv1 has no --crf setting"),
    (["--threads", "-1"], "--threads"),
    (["--overwrite", "--skip-existing"], "exclude each other"),
])
def test_cli_invalid_options_exit_2(tmp_path, weights, options, message):
    source = make_clip(tmp_path / "in.mp4", audio=None, frames=2)
    args = ["video", str(source), "-o", str(tmp_path / "out.mp4"), "--weights", str(weights), *options]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, _describe(result)
    assert message in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_cli_rejects_file_output_for_folder(tmp_path, weights):
    folder = tmp_path / "clips"
    folder.mkdir()
    make_clip(folder / "a.mp4", audio=None, frames=2)
    result = _run(weights, folder, "-o", tmp_path / "out.mp4")
    assert result.exit_code == 2, _describe(result)
    assert "looks like a file name" in result.stderr
    assert not (tmp_path / "out.mp4").exists()


def test_cli_rejects_codec_the_container_cannot_hold(tmp_path, weights):
    source = make_clip(tmp_path / "in.mp4", audio=None, frames=2)
    for output, options, message in ((tmp_path / "out.mov", ["--codec", "vp8"], "cannot hold vp8 video"),
                                     (tmp_path / "out.ogv", [], "cannot hold h264 video"),
                                     (tmp_path / "out.avi", [], "AVI cannot keep the source timestamps")):
        result = _run(weights, source, "-o", output, *options)
        assert result.exit_code == 2, f"{output.name}: {_describe(result)}"
        assert message in result.stderr, output.name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_list_codecs_shows_short_names():
    result = CliRunner().invoke(app, ["video", "--list-codecs"])
    assert result.exit_code == 0, _describe(result)
    lines = result.stdout.splitlines()
    assert lines[:2] == ["h264 (libx264)", "hevc (libx265)"]
    assert "vp9 (libvpx-vp9)" in lines
    assert "libx264" not in lines


# Damaged inputs.

def _noise_clip(path: Path, frames: int, *, codec: str = "libx264", options: dict | None = None,
                first_pts: int = 0) -> Path:
    """Clip of random frames at 30 fps with no audio. Noise keeps every frame about the same
    size, so a cut at a byte fraction lands at about that fraction of the frames."""
    with av.open(str(path), "w", options=options or {}) as container:
        stream = container.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for index in range(frames):
            pixels = np.random.default_rng(index).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format="yuv420p")
            frame.pts = first_pts + index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def test_damaged_inputs_fail(tmp_path, upscaler):
    whole_mkv = _noise_clip(tmp_path / "whole.mkv", 30)
    whole_mp4 = _noise_clip(tmp_path / "whole.mp4", 30, options={"movflags": "faststart"})
    data = whole_mkv.read_bytes()
    truncated = tmp_path / "truncated.mkv"
    truncated.write_bytes(data[:len(data) // 3])
    overwritten = tmp_path / "overwritten.mkv"
    middle = len(data) // 2
    overwritten.write_bytes(data[:middle] + bytes(3000) + data[middle + 3000:])
    half = tmp_path / "half.mp4"
    half.write_bytes(whole_mp4.read_bytes()[:whole_mp4.stat().st_size // 2])

    for source in (truncated, overwritten, half):
        target = tmp_path / f"out-{source.name}"
        with pytest.raises(VideoReadError, match="looks truncated or damaged"):
            upscale_video(VideoJob(source, target), upscaler, SETTINGS)
        assert not target.exists(), source.name
        assert not target.with_name(target.name + ".partial").exists(), source.name


def test_complete_inputs_pass_damage_checks(tmp_path, upscaler):
    # The AVI holds an MPEG-4 Part 2 stream at one fixed rate. The edit list of the MP4 hides the
    # first 5 of its 20 stored frames, so its stored frame count exceeds the frames shown.
    avi = _noise_clip(tmp_path / "whole.avi", 20, codec="mpeg4")
    trimmed = _noise_clip(tmp_path / "trimmed.mp4", 20, first_pts=-5)
    with av.open(str(trimmed)) as container:
        assert container.streams.video[0].frames == 20
    for source, expected in ((avi, 20), (trimmed, 15)):
        result = upscale_video(VideoJob(source, tmp_path / f"out-{source.stem}.mkv"), upscaler, SETTINGS)
        assert result.frames == expected, source.name


def test_decode_fails_when_video_ends_early(tmp_path):
    from dataclasses import replace

    from upscale.video import _decode, _probe

    source = make_clip(tmp_path / "in.mkv", audio=None)
    info = _probe(source)
    # The DURATION tag of the 12 frames at 29.97 fps: 12 × 1001/30000 s = 0.4004 s.
    assert info.end_seconds == pytest.approx(12 * 1001 / 30000, abs=1e-3)
    assert len(list(_decode(source, info, 0))) == FRAMES

    # 0.25 s of tolerance: a declared end 0.2 s later passes, 0.3 s later fails.
    assert len(list(_decode(source, replace(info, end_seconds=info.end_seconds + 0.2), 0))) == FRAMES
    with pytest.raises(VideoReadError, match="12 frames decoded, ending at 0.40 s, but the container lists 0.70 s"):
        list(_decode(source, replace(info, end_seconds=info.end_seconds + 0.3), 0))


def test_cli_damaged_input_exit_1_and_others_run(tmp_path, weights):
    good = make_clip(tmp_path / "good.mp4", audio=None, frames=4)
    whole = _noise_clip(tmp_path / "whole.mkv", 30)
    truncated = tmp_path / "truncated.mkv"
    truncated.write_bytes(whole.read_bytes()[:whole.stat().st_size // 3])
    out = tmp_path / "out"

    result = _run(weights, truncated, good, "-o", out)
    assert result.exit_code == 1, _describe(result)
    assert sorted(p.name for p in out.iterdir()) == ["good.mp4"]
    failures = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
    assert len(failures) == 1, result.stderr
    assert failures[0].startswith(f"failed: {truncated}: the file looks truncated or damaged")


# Output planning: existing outputs, collisions, containers.

def test_cli_resume_counts_finished_outputs_as_done(tmp_path, weights):
    folder = tmp_path / "clips"
    folder.mkdir()
    make_clip(folder / "a.mp4", audio=None, frames=4)
    make_clip(folder / "b.mp4", audio=None, frames=4)
    out = tmp_path / "out"
    assert _run(weights, folder, "-o", out, "--quiet").exit_code == 0
    (out / "b.mp4").unlink()

    result = _run(weights, folder, "-o", out, "--resume")
    assert result.exit_code == 0, _describe(result)
    assert "1 written, 0 failed, skipped: 1 already done" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4", "b.mp4"]

    skipped = _run(weights, folder, "-o", out, "--skip-existing")
    assert skipped.exit_code == 0, _describe(skipped)
    assert "0 written, 0 failed, skipped: 2 already done" in skipped.stderr


def test_plan_collisions_and_duplicates(tmp_path):
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        make_clip(tmp_path / name / "clip.mp4", audio=None, frames=2)
    out = tmp_path / "out"
    plan = plan_video_jobs([str(tmp_path / "one" / "clip.mp4"), str(tmp_path / "two" / "clip.mp4")], out)
    assert plan.jobs == []
    assert [source.parent.name for source, _ in plan.failed] == ["one", "two"]
    assert all("output name collision" in reason for _, reason in plan.failed)

    same = str(tmp_path / "one" / "clip.mp4")
    plan = plan_video_jobs([same, same, str(tmp_path / "one")], out)
    assert plan.failed == []
    assert plan.jobs == [VideoJob(Path(same), out / "clip.mp4")]


def test_plan_mkv_for_unfit_containers(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("a.avi", "b.ogv", "c.mp4", "d.webm", "e.mpg"):
        (folder / name).write_bytes(b"planning reads only names")
    (folder / ".hidden.mp4").write_bytes(b"")
    (folder / "notes.txt").write_text("")
    (folder / "sub").mkdir()
    plan = plan_video_jobs([str(folder)], tmp_path / "out")
    assert [job.target.name for job in plan.jobs] == ["a.mkv", "b.mkv", "c.mp4", "d.webm", "e.mkv"]
    assert "AVI cannot keep the source timestamps" in plan.notices[folder / "a.avi"]
    assert "the .ogv container cannot hold h264" in plan.notices[folder / "b.ogv"]
    assert "the .mpg container cannot hold h264" in plan.notices[folder / "e.mpg"]
    assert (plan.skipped_hidden, plan.skipped_not_video, plan.skipped_folders) == (1, 1, 1)

    vp8 = plan_video_jobs([str(folder)], tmp_path / "out", codec="vp8")
    assert [job.target.name for job in vp8.jobs] == ["a.mkv", "b.ogv", "c.mkv", "d.webm", "e.mkv"]
    assert "cannot hold vp8" in vp8.notices[folder / "c.mp4"]


def test_opus_into_mov_reencoded_before_decoding(tmp_path, upscaler):
    source = make_clip(tmp_path / "in.webm", codec="libvpx-vp9", audio="libopus")
    target = tmp_path / "out.mov"
    result = upscale_video(VideoJob(source, target), upscaler, SETTINGS)
    assert _codec_names(target, "audio") == ["aac"]
    assert any("re-encoded to AAC" in notice for notice in result.notices), result.notices

    progress: list[int] = []
    with pytest.raises(VideoWriteError, match="cannot hold vp9 video"):
        upscale_video(VideoJob(source, tmp_path / "vp9.mov"), upscaler, VideoSettings(codec="vp9"),
                      on_progress=lambda done, total, estimated: progress.append(done))
    assert progress == [], "the container check must come before the first frame"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.webm", "out.mov"]


def test_cli_folder_reports_skips_and_avi_as_mkv(tmp_path, weights):
    folder = tmp_path / "clips"
    folder.mkdir()
    _noise_clip(folder / "a.avi", 3, codec="mpeg4")
    (folder / ".hidden.mp4").write_bytes(b"")
    (folder / "notes.txt").write_text("")
    out = tmp_path / "out"

    result = _run(weights, folder, "-o", out)
    assert result.exit_code == 0, _describe(result)
    assert sorted(p.name for p in out.iterdir()) == ["a.mkv"]
    assert f"warning: {folder / 'a.avi'}: written as .mkv" in result.stderr
    assert f"wrote {out / 'a.mkv'} (3 frames" in result.stderr
    assert "1 written, 0 failed, skipped: 1 not videos, 1 hidden" in result.stderr

    quiet = _run(weights, folder, "-o", out, "--quiet", "--overwrite")
    assert quiet.exit_code == 0, _describe(quiet)
    assert quiet.stderr == ""


# Stream properties carried over.

def test_sample_aspect_ratio_kept(tmp_path, upscaler):
    source = tmp_path / "anamorphic.mkv"
    with av.open(str(source), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.sample_aspect_ratio = Fraction(4, 3)
        for index in range(3):
            frame = av.VideoFrame.from_ndarray(_frame_pixels(index), format="rgb24").reformat(format="yuv420p")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    for name in ("out.mkv", "out.mp4"):
        upscale_video(VideoJob(source, tmp_path / name), upscaler, SETTINGS)
        with av.open(str(tmp_path / name)) as container:
            stream = container.streams.video[0]
            # 64×48 pixels of shape 4:3 display as 16:9, and so do 128×96.
            assert stream.sample_aspect_ratio == Fraction(4, 3), name
            assert stream.display_aspect_ratio == Fraction(16, 9), name


def test_hevc_in_mp4_tagged_hvc1(tmp_path, upscaler):
    source = make_clip(tmp_path / "in.mp4", audio=None, frames=3)
    target = tmp_path / "out.mp4"
    upscale_video(VideoJob(source, target), upscaler, VideoSettings(codec="hevc"))
    with av.open(str(target)) as container:
        assert container.streams.video[0].codec_context.codec_tag == "hvc1"


def test_stream_language_and_title_kept(tmp_path, upscaler):
    tags = {"audio": {"language": "deu", "title": "Kommentar"}, "subtitle": {"language": "fra"}}
    source = make_clip(tmp_path / "in.mkv", subtitle=True, tags=tags, frames=3)
    copied = tmp_path / "out.mkv"
    upscale_video(VideoJob(source, copied), upscaler, SETTINGS)
    with av.open(str(copied)) as container:
        audio, subtitle = container.streams.audio[0], container.streams.subtitles[0]
        assert audio.metadata.get("language") == "deu"
        assert audio.metadata.get("title") == "Kommentar"
        assert subtitle.metadata.get("language") == "fra"

    # WavPack is re-encoded for MP4, and the new stream keeps the tags too.
    source = make_clip(tmp_path / "wavpack.mkv", audio="wavpack", tags=tags, frames=3)
    encoded = tmp_path / "out.mp4"
    upscale_video(VideoJob(source, encoded), upscaler, SETTINGS)
    with av.open(str(encoded)) as container:
        audio = container.streams.audio[0]
        assert audio.codec_context.name == "aac"
        assert audio.metadata.get("language") == "deu"


def test_progress_ends_at_real_frame_count():
    from cli import _VideoProgress

    with _VideoProgress(enabled=False) as progress:
        progress.start("clip.mkv")
        progress.update(88, 91, True)
        progress.finish(90)
        task = progress.progress.tasks[0]
    assert task.total == 90
    assert task.completed == 90
    assert task.fields["estimate"] == ""


def test_cli_missing_single_input_not_found(tmp_path, weights):
    missing = tmp_path / "nonexist.mp4"
    result = _run(weights, missing, "-o", tmp_path / "out.mp4")
    assert result.exit_code == 1, _describe(result)
    assert f"{missing}: not found; check the path" in " ".join(result.stderr.split()), _describe(result)
    assert "looks like a file name" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_cli_quiet_prints_no_status_line(tmp_path, weights):
    source = make_clip(tmp_path / "in.mp4", audio=None, frames=2)
    loud = _run(weights, source, "-o", tmp_path / "loud.mp4", "--backend", "onnxruntime")
    quiet = _run(weights, source, "-o", tmp_path / "quiet.mp4", "--backend", "onnxruntime", "-q")
    assert loud.exit_code == 0 and quiet.exit_code == 0, _describe(loud) + _describe(quiet)
    assert "sesr-m3 ×2 on onnxruntime fp32, 1 thread" in loud.stderr, _describe(loud)
    assert quiet.stderr == "", _describe(quiet)


def test_hevc_probes_print_no_x265_log(capfd: pytest.CaptureFixture[str]) -> None:
    # x265 writes its banner straight to file descriptor 2, so only capfd captures it.
    assert container_holds(".mkv", "libx265")
    check_encoder_settings(VideoSettings(preset="fast"), "libx265")
    err = capfd.readouterr().err
    assert "x265 [info]" not in err, err[:500]


def test_cli_still_image_fails_others_run(tmp_path, weights):
    import cv2

    still = tmp_path / "still.png"
    assert cv2.imwrite(str(still), np.zeros((48, 64, 3), np.uint8))
    source = make_clip(tmp_path / "in.mp4", audio=None, frames=2)
    result = _run(weights, still, source, "-o", tmp_path / "out", "--backend", "onnxruntime")
    assert result.exit_code == 1, _describe(result)
    assert "still.png: is a still image, not a video" in " ".join(result.stderr.split()), _describe(result)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["in.mp4"]
