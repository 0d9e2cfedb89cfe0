"""visionloop: a self-hosted, Clarifai-v2-compatible visual recognition API that learns from feedback."""

__version__ = "0.1.0"
