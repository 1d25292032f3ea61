"""nerfstudio's full-image datamanager, reading every image with `foresplat_ns.data.read_image` and caching
large captures without CUDA.

nerfstudio's InputDataset turns a PIL image into pixels with `np.array(image, dtype="uint8")`, whatever its
mode: a 16-bit grey capture keeps its low bytes (noise), a palette image its indices and a CMYK JPEG its
K channel as alpha, all without an error. `setup_full_image_datamanager` uses this datamanager wherever
nerfstudio's plain one is configured.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch
from nerfstudio.data.datamanagers.full_images_datamanager import FullImageDatamanager
from nerfstudio.data.datasets.base_dataset import InputDataset
from PIL import Image

from foresplat_ns.data import read_image


class CaptureImageDataset(InputDataset):
    """InputDataset whose images are RGB or RGBA as their mode says (`read_image`)."""

    def get_numpy_image(self, image_idx: int) -> npt.NDArray[np.uint8]:
        image = read_image(self._dataparser_outputs.image_filenames[image_idx])
        if self.scale_factor != 1.0:  # as nerfstudio resizes
            width, height = image.size
            size = (int(width * self.scale_factor), int(height * self.scale_factor))
            image = image.resize(size, resample=Image.Resampling.BILINEAR)
        return np.asarray(image, dtype=np.uint8)


class CaptureImageDatamanager(FullImageDatamanager[CaptureImageDataset]):
    """FullImageDatamanager over `CaptureImageDataset`, caching on a CPU-only machine as on a CPU.

    nerfstudio caches a capture of more than 500 training images in pinned memory ("cpu"), which needs
    CUDA: without it, every capture that large stopped with "Found no NVIDIA driver". "gpu" caches on the
    datamanager's device, here the CPU."""

    def __init__(self, config, device="cpu", *args, **kwargs):
        super().__init__(config, device, *args, **kwargs)
        if self.config.cache_images == "cpu" and not torch.cuda.is_available():
            self.config.cache_images = "gpu"
