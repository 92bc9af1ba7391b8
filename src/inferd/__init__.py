"""inferd: model serving with dynamic batching over the Open Inference Protocol."""

__version__ = "0.1.0"
