"""HTTP layer: FastAPI routes speaking the Clarifai v2 JSON wire format."""
