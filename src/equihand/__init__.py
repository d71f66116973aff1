"""equihand: a reproducible study of self-supervised pretraining for 3D hand pose."""

__version__ = "0.1.0"
