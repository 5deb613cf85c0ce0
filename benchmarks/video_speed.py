"""Measure end-to-end frames per second of ``upscale_video`` beside the image path's speed.

One run makes a synthetic clip (default 24 frames of 1920×1080 at 30000/1001 fps, H.264 with an
AAC sine track) in a temporary folder and times, on the same machine and load:

- network only: the SESR network on one frame's 1×1×H×W float32 luma, as in ``speed.py``;
- image path: ``upscale_array`` on one RGB frame (color conversion, tiles, bicubic chroma);
- decode only: decoding the clip to frames with PyAV;
- encode only: encoding the upscaled frame size with the chosen encoder (bicubic frames);
- end to end: ``upscale_video`` on the clip (decode, upscale and encode overlapping, then the join).

Network and image-path rows take the median of ``--repeats`` calls after one warm-up. The
others time one pass over the whole clip. Results go to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import _cpu_model, _frame_size, _versions, make_frame  # noqa: E402

from upscale import Upscaler  # noqa: E402
from upscale.color import rgb_to_y  # noqa: E402
from upscale.pipeline import plan_tiles, upscale_array  # noqa: E402
from upscale.video import CODEC_ALIASES, VideoJob, VideoSettings, upscale_video  # noqa: E402

logger = logging.getLogger("benchmarks.video_speed")

RATE = Fraction(30000, 1001)
SAMPLE_RATE = 48000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=_frame_size, default=(1920, 1080), metavar="WxH",
                        help="source frame size in pixels (default: 1920x1080)")
    parser.add_argument("--frames", type=int, default=24, help="frames in the clip (default: 24)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed calls of the network-only and image-path rows (default: 3)")
    parser.add_argument("--codec", default="h264", help="output encoder (default: h264)")
    parser.add_argument("--preset", default=None, help="encoder preset (default: the encoder's own)")
    parser.add_argument("--batch", type=int, default=4, help="frames per network call (default: 4)")
    parser.add_argument("--threads", type=int, default=0, help="backend threads; 0 = all cores")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    return parser.parse_args(argv)


def make_clip(path: Path, width: int, height: int, frames: int) -> None:
    """Write an H.264 clip of a slowly moving synthetic frame with a sine-tone AAC track."""
    base = make_frame(width, height)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=RATE, options={"crf": "18", "preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = container.add_stream("aac", rate=SAMPLE_RATE)
        audio.layout = "stereo"
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(np.roll(base, 4 * index, axis=1), format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode())

        samples = round(frames / RATE * SAMPLE_RATE)
        tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / SAMPLE_RATE)).astype(np.float32)
        stereo = np.repeat(tone[None], 2, axis=0)
        for start in range(0, samples, 1024):
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(stereo[:, start:start + 1024]),
                                               format="fltp", layout="stereo")
            chunk.sample_rate, chunk.pts = SAMPLE_RATE, start
            container.mux(audio.encode(chunk))
        container.mux(audio.encode())


def _median_seconds(run, repeats: int) -> float:
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_decode(path: Path) -> tuple[float, int]:
    start = time.perf_counter()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        count = sum(1 for frame in container.decode(stream) if frame.to_ndarray(format="yuv420p") is not None)
    return time.perf_counter() - start, count


def time_encode(path: Path, frame: np.ndarray, frames: int, codec: str, preset: str | None) -> float:
    """Seconds to encode ``frames`` copies (shifted per frame) of ``frame`` with the job's encoder."""
    name = CODEC_ALIASES.get(codec, codec)
    options = {"crf": "18"} if name == "libx264" else {}
    if preset:
        options["preset"] = preset
    start = time.perf_counter()
    with av.open(str(path), "w") as container:
        stream = container.add_stream(name, rate=RATE, options=options)
        stream.height, stream.width = frame.shape[:2]
        stream.pix_fmt = "yuv420p"
        for index in range(frames):
            video_frame = av.VideoFrame.from_ndarray(np.roll(frame, 8 * index, axis=1), format="rgb24")
            video_frame.pts = index
            container.mux(stream.encode(video_frame.reformat(format="yuv420p")))
        container.mux(stream.encode())
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.frames < 1 or args.repeats < 1:
        print("error: --frames and --repeats must be at least 1", file=sys.stderr)
        return 2
    width, height = args.size
    upscaler = Upscaler("sesr-m5", 2, threads=args.threads)
    frame = make_frame(width, height)
    luma = rgb_to_y(frame / 255.0).astype(np.float32)[None, None]
    rows: list[tuple[str, float]] = []

    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "source.mp4"
        logger.info("making a %d-frame %dx%d clip", args.frames, width, height)
        make_clip(source, width, height, args.frames)

        logger.info("network only and image path")
        rows.append(("sesr-m5 ×2 network only (whole frame), onnxruntime",
                     _median_seconds(lambda: upscaler.network(luma), args.repeats)))
        rows.append(("sesr-m5 ×2 image path upscale_array (512-px tiles), onnxruntime",
                     _median_seconds(lambda: upscale_array(frame, upscaler.network), args.repeats)))

        logger.info("decode only")
        seconds, count = time_decode(source)
        rows.append((f"decode only, {count} frames of H.264 {width}×{height}", seconds / count))

        logger.info("encode only")
        upscaled = cv2.resize(frame, (2 * width, 2 * height), interpolation=cv2.INTER_CUBIC)
        seconds = time_encode(Path(folder) / "encode.mp4", upscaled, args.frames, args.codec, args.preset)
        rows.append((f"encode only, {args.codec} {2 * width}×{2 * height}", seconds / args.frames))

        logger.info("end to end")
        settings = VideoSettings(codec=args.codec, preset=args.preset, batch_frames=args.batch)
        start = time.perf_counter()
        result = upscale_video(VideoJob(source, Path(folder) / "out.mp4"), upscaler, settings)
        seconds = time.perf_counter() - start
        if result.frames != args.frames:
            print(f"error: the output has {result.frames} frames, expected {args.frames}", file=sys.stderr)
            return 1
        rows.append((f"end to end upscale_video, {args.codec} {2 * width}×{2 * height}, batch {args.batch}",
                     seconds / result.frames))

    tiles = plan_tiles(height, width, None, upscaler.descriptor.receptive_radius).count
    # Other processes on the machine slow every row alike; the load average records how busy it was.
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    header = [f"command: python {' '.join(sys.argv)}",
              f"CPU: {_cpu_model()}, {os.cpu_count()} logical cores, threads: {args.threads or 'library defaults'}",
              f"load average (1, 5, 15 min) at the end: {load}",
              f"versions: {_versions()}, PyAV {av.__version__}",
              f"clip: {args.frames} frames {width}×{height} at 30000/1001 fps with AAC audio → "
              f"{2 * width}×{2 * height}; {tiles} tiles per frame"]
    if args.markdown:
        lines = [f"- {line}" for line in header]
        lines += ["", "| stage | s/frame | FPS |", "| --- | ---: | ---: |"]
        lines += [f"| {label} | {s:.3f} | {1 / s:.2f} |" for label, s in rows]
    else:
        lines = [f"# {line}" for line in header]
        lines += [f"{label:<70} {s:8.3f} s/frame {1 / s:7.2f} FPS" for label, s in rows]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
