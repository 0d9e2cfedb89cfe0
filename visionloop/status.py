"""Clarifai status codes (numbers from the official client packages' ``status_code.proto``)."""

SUCCESS = 10000
MIXED_STATUS = 10010
FAILURE = 10020

CONN_THROTTLED = 11005
CONN_EXCEEDS_LIMITS = 11006
CONN_INSUFFICIENT_SCOPES = 11007
CONN_KEY_INVALID = 11008
CONN_KEY_NOT_FOUND = 11009
CONN_BAD_REQUEST_FORMAT = 11100
CONN_DOES_NOT_EXIST = 11101
CONN_INVALID_REQUEST = 11102
CONN_METHOD_NOT_ALLOWED = 11103

MODEL_TRAINED = 21100
MODEL_TRAINING = 21101
MODEL_UNTRAINED = 21102
MODEL_QUEUED_FOR_TRAINING = 21103
MODEL_TRAINING_FAILED = 21106
MODEL_TRAINING_NO_DATA = 21110
MODEL_TRAINING_INSUFFICIENT_DATA = 21117
MODEL_DOES_NOT_EXIST = 21200
MODEL_PERMISSION_DENIED = 21201
MODEL_INVALID_ARGUMENT = 21202
MODEL_EVALUATED = 21300

INPUT_SUCCESS = 30000
INPUT_PENDING = 30001
INPUT_FAILED = 30002
INPUT_IN_PROGRESS = 30003
INPUT_DUPLICATE = 30100
INPUT_UNSUPPORTED_FORMAT = 30101
INPUT_DOES_NOT_EXIST = 30102
INPUT_INVALID_ARGUMENT = 30104
INPUT_OVER_LIMIT = 30105
INPUT_INVALID_URL = 30106

PREDICT_INVALID_REQUEST = 40001
SEARCH_INVALID_REQUEST = 40002
CONCEPTS_INVALID_REQUEST = 40003

DESCRIPTIONS: dict[int, str] = {
    SUCCESS: "Ok",
    MIXED_STATUS: "Mixed Success",
    FAILURE: "Failure",
    INPUT_SUCCESS: "Input image processed successfully",
    INPUT_PENDING: "Input image pending",
    INPUT_IN_PROGRESS: "Input image processing",
    INPUT_FAILED: "Input download failed",
    MODEL_TRAINED: "Model is trained and ready",
    MODEL_TRAINING: "Model is currently training",
    MODEL_UNTRAINED: "Model is not yet trained",
    MODEL_QUEUED_FOR_TRAINING: "Model is queued for training",
    MODEL_TRAINING_FAILED: "Model training failed",
    MODEL_TRAINING_NO_DATA: "Model training had no data",
    MODEL_TRAINING_INSUFFICIENT_DATA: "Model training had insufficient data",
    MODEL_EVALUATED: "Model was successfully evaluated",
}


def envelope(code: int, description: str | None = None, details: str = "") -> dict:
    """A Clarifai ``status`` object."""
    body = {"code": code, "description": description or DESCRIPTIONS.get(code, "")}
    if details:
        body["details"] = details
    return body
