"""Upstream weights of the large pretrained backbones (`anysplat`, `pi3x`), found and loaded once.

They are too large to build a model for before knowing the weights exist: `find_weights` locates them
(a local path or the user's Hugging Face cache, never a download) and `load_weights` loads them
strictly, naming the file and the keys when they do not fit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

import torch
from torch import nn


def find_weights(checkpoint: Optional[Path], repo_id: str, filename: str, model_name: str, licence: str) -> Path:
    """The weights file: `checkpoint` (the file, or a folder holding `filename`), else the Hugging Face
    cache's copy of `repo_id`/`filename`. Never downloads; a missing file is a ValueError saying which
    file and how to get it."""
    how = (
        f"Download them (licence: {licence}) with `hf download {repo_id} {filename}` (into the Hugging Face cache, "
        f"found automatically) or `hf download {repo_id} {filename} --local-dir DIR` and pass DIR as the "
        "checkpoint (ns-train foresplat and foresplat-meta: --pipeline.backbone.checkpoint DIR; "
        "foresplat-distill: --teacher.checkpoint DIR)"
    )
    if checkpoint is not None:
        path = Path(checkpoint)
        if path.is_dir():
            path = path / filename
        if not path.is_file():
            raise ValueError(f"{model_name} weights not found: {path} does not exist. {how}")
        return path
    try:
        from huggingface_hub import try_to_load_from_cache
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError:
        cached, cache = None, "the Hugging Face cache (huggingface_hub is not installed)"
    else:
        cached, cache = try_to_load_from_cache(repo_id, filename), HF_HUB_CACHE
    if not isinstance(cached, str):
        raise ValueError(f"{model_name} weights not found: no {repo_id}/{filename} in {cache}, and no checkpoint path given. {how}")
    return Path(cached)


def load_weights(module: nn.Module, path: Path, model_name: str, ignored_prefixes: Iterable[str] = ()) -> None:
    """Load a safetensors or torch state dict into `module`, refusing missing keys and unexpected keys
    outside `ignored_prefixes` (weights of branches the module was built without)."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, corrupt or not a weights file
        raise ValueError(f"{model_name} weights {path} could not be read (truncated or corrupt?): {err}") from err
    if not isinstance(state, dict):
        raise ValueError(f"{model_name} weights {path} hold no state dict")
    ignored = tuple(ignored_prefixes)
    missing, unexpected = module.load_state_dict(state, strict=False)
    unexpected = [key for key in unexpected if not key.startswith(ignored)] if ignored else list(unexpected)
    if missing or unexpected:
        raise ValueError(
            f"{model_name} weights {path} do not fit the model: {len(missing)} missing keys {list(missing)[:5]}, "
            f"{len(unexpected)} unexpected keys {unexpected[:5]} (another model, or another architecture setting?)"
        )
