"""edgeclip: compress CLIP into small, fast models for edge devices."""

__version__ = "0.1.0"
