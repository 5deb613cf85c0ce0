"""Inference pipeline: read an image, upscale luma with SESR and chroma with bicubic, write it.

Needs numpy, OpenCV, Pillow and onnxruntime; OpenVINO for the fastest paths (bf16, int8), torch
only for the torch backend.
"""

from .api import Upscaler
from .backends import (Backend, BackendChoice, BackendError, LumaNetwork, Precision, build_onnx_model,
                       choose_backend, open_backend)
from .batch import BatchResult, ExistingPolicy, Job, JobPlan, plan_jobs, run_jobs
from .io import ImageFormat, ImageReadError, ImageWriteError, LoadedImage, read_image, write_image
from .pipeline import TilePlan, plan_tiles, upscale_array

__all__ = [
    "Upscaler", "Backend", "BackendChoice", "BackendError", "LumaNetwork", "Precision", "build_onnx_model",
    "choose_backend", "open_backend",
    "BatchResult", "ExistingPolicy", "Job", "JobPlan", "plan_jobs", "run_jobs",
    "ImageFormat", "ImageReadError", "ImageWriteError", "LoadedImage", "read_image", "write_image",
    "TilePlan", "plan_tiles", "upscale_array",
]
