"""ForeSplat for nerfstudio: feed-forward Gaussians trained to be a good start for a short refinement."""

__version__ = "0.1.0"
