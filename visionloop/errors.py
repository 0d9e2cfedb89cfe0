"""The one error hierarchy of visionloop.

Every failure a client can cause is an :class:`ApiError` carrying a Clarifai status code, the
HTTP status it travels with, a readable description and optional details (e.g. a field path).
Exactly one place (``visionloop.http.errors``) turns these into the status envelope::

    ApiError
    ├── BadRequestFormat      11100  body is not JSON / wrong shape
    ├── InvalidRequest        11102  a field of the wrong type or out of range
    ├── RequestTooLarge       11102  body over the size limit (HTTP 413)
    ├── KeyMissing / KeyNotFound / KeyInvalid   11009 / 11009 / 11008 (HTTP 401)
    ├── InsufficientScopes    11007  (HTTP 403)
    ├── CsrfRefused           11102  a console form without its session's CSRF token (HTTP 403)
    ├── NotFound              11101  (HTTP 404)
    │   ├── AppNotFound / ResourceNotFound / RouteNotFound   11101  another app / an unknown id / path
    │   └── InputNotFound / ConceptNotFound / ModelNotFound  their own codes
    ├── ModelUnavailable      21201  a Clarifai public model with no offline weights (HTTP 403)
    ├── InputInvalid          30104  bad image or input fields
    ├── InputInvalidUrl       30106  an image URL that could not be fetched
    │   └── InputUrlRefused   30106  a URL refused before any download (malformed, a non-public address)
    ├── InputDownloadFailed   30002  a stored input whose URL could not be fetched or decoded
    ├── Throttled / LimitExceeded  11005 / 11006 (HTTP 429)
    └── ...
"""

from __future__ import annotations

from visionloop import status


class ApiError(Exception):
    """A failure with a Clarifai status code; never carries a traceback to the client."""

    code: int = status.FAILURE
    http_status: int = 400
    default_description: str = "Failure"

    def __init__(self, details: str = "", *, description: str | None = None) -> None:
        self.description = description or self.default_description
        self.details = details
        super().__init__(f"{self.code} {self.description}: {details}")

    def at(self, field: str) -> ApiError:
        """This error, its details prefixed with the request field it is about."""
        return self._detailed(f"{field}: {self.details}")

    def noting(self, note: str) -> ApiError:
        """This error, with ``note`` added to its details."""
        return self._detailed(f"{self.details}; {note}")

    def _detailed(self, details: str) -> ApiError:
        self.details = details
        self.args = (f"{self.code} {self.description}: {self.details}",)
        return self


class BadRequestFormat(ApiError):
    code = status.CONN_BAD_REQUEST_FORMAT
    default_description = "Bad request format"


class InvalidRequest(ApiError):
    code = status.CONN_INVALID_REQUEST
    default_description = "Invalid request"


class RequestTooLarge(ApiError):
    code = status.CONN_INVALID_REQUEST
    http_status = 413
    default_description = "Request entity too large"


class KeyMissing(ApiError):
    code = status.CONN_KEY_NOT_FOUND
    http_status = 401
    default_description = "API key not found"


class KeyNotFound(KeyMissing):
    """A key no app has (Clarifai's answer to an unknown key); a revoked key is KeyInvalid."""


class KeyInvalid(ApiError):
    code = status.CONN_KEY_INVALID
    http_status = 401
    default_description = "Invalid API key or Invalid API key/application pair"


class InsufficientScopes(ApiError):
    code = status.CONN_INSUFFICIENT_SCOPES
    http_status = 403
    default_description = "Insufficient scopes"


class CsrfRefused(ApiError):
    code = status.CONN_INVALID_REQUEST
    http_status = 403
    default_description = "CSRF check failed"


class NotFound(ApiError):
    """Something the request names does not exist (HTTP 404); subclasses say what, with their code."""

    code = status.CONN_DOES_NOT_EXIST
    http_status = 404
    default_description = "Resource does not exist"


class AppNotFound(NotFound):
    """An app-scoped path naming another app."""


class ResourceNotFound(NotFound):
    """An output or search id unknown in the caller's app."""


class RouteNotFound(NotFound):
    """A path no route serves."""


class MethodNotAllowed(ApiError):
    code = status.CONN_METHOD_NOT_ALLOWED
    http_status = 405
    default_description = "Method not allowed"


class Throttled(ApiError):
    code = status.CONN_THROTTLED
    http_status = 429
    default_description = "Making too many requests"


class LimitExceeded(ApiError):
    code = status.CONN_EXCEEDS_LIMITS
    http_status = 429
    default_description = "Usage limit exceeded"


class InputNotFound(NotFound):
    code = status.INPUT_DOES_NOT_EXIST
    default_description = "Input does not exist"


class InputImageMissing(ApiError):
    """A stored input whose image the blob store cannot give back (a data folder not shared by
    every process, an object deleted by hand, an unreachable store)."""

    code = status.INPUT_FAILED
    http_status = 404
    default_description = "Input image not found"


class ImageStoreUnavailable(ApiError):
    """The blob store did not take an image (an S3 store unreachable or refusing): nothing names it."""

    code = status.FAILURE
    http_status = 503
    default_description = "Image store unavailable"


class InputInvalid(ApiError):
    code = status.INPUT_INVALID_ARGUMENT
    default_description = "Invalid input argument"


class InputDuplicate(ApiError):
    code = status.INPUT_DUPLICATE
    default_description = "Input already exists"


class InputUnsupportedFormat(ApiError):
    code = status.INPUT_UNSUPPORTED_FORMAT
    default_description = "Unsupported image format"


class InputInvalidUrl(ApiError):
    code = status.INPUT_INVALID_URL
    default_description = "Invalid or forbidden image URL"


class InputUrlRefused(InputInvalidUrl):
    """A URL refused before anything was downloaded (malformed, not http(s), a non-public address):
    a request error, so ``POST /v2/inputs`` stores nothing for it, unlike a failed download."""


class InputDownloadFailed(ApiError):
    """An input stored with its URL although the image could not be fetched or decoded (Clarifai's
    INPUT_DOWNLOAD_FAILED); also the refusal to predict or search with such an input's image."""

    code = status.INPUT_FAILED
    default_description = "Input download failed"

    @classmethod
    def because(cls, cause: str, field: str = "") -> InputDownloadFailed:
        """The error naming its cause in the description too (the Python client shows only that)."""
        return cls(f"{field}: {cause}" if field else cause, description=f"{cls.default_description}: {cause}")


class InputOverLimit(ApiError):
    code = status.INPUT_OVER_LIMIT
    default_description = "Input over size limit"


class ConceptNotFound(NotFound):
    code = status.CONCEPTS_INVALID_REQUEST
    default_description = "Concept does not exist"


class ConceptInvalid(ApiError):
    code = status.CONCEPTS_INVALID_REQUEST
    default_description = "Invalid concept request"


class ModelNotFound(NotFound):
    code = status.MODEL_DOES_NOT_EXIST
    default_description = "Model does not exist"


class ModelUnavailable(ApiError):
    """A Clarifai public model this offline server cannot serve (no weights for it exist offline)."""

    code = status.MODEL_PERMISSION_DENIED
    http_status = 403
    default_description = "Model not available offline"


class ModelInvalid(ApiError):
    code = status.MODEL_INVALID_ARGUMENT
    default_description = "Invalid model argument"


class PredictInvalid(ApiError):
    code = status.PREDICT_INVALID_REQUEST
    default_description = "Invalid predict request"


class SearchInvalid(ApiError):
    code = status.SEARCH_INVALID_REQUEST
    default_description = "Invalid search request"


class Internal(ApiError):
    code = status.FAILURE
    http_status = 500
    default_description = "Internal failure"
