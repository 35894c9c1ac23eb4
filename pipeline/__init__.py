"""ACMMG pipeline: build multimodal Amazon co-purchase graph datasets."""

__version__ = "0.1.0"
