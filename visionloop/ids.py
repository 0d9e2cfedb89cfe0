"""Identifiers: 32 hex characters like Clarifai's, and the rule for client-chosen ids."""

from __future__ import annotations

import re
import uuid

_CLIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}")


def new_id() -> str:
    return uuid.uuid4().hex


_CONCEPT_ID = re.compile(r"[^\x00-\x1f\x7f/\\]{1,64}")


def is_valid_concept_id(value: str) -> bool:
    """Concept ids are names clients choose ("golden retriever"): 1-64 printable characters, no
    slashes (they appear in paths) and not only spaces."""
    return bool(_CONCEPT_ID.fullmatch(value)) and bool(value.strip())


_MODEL_ID = re.compile(r"[^\x00-\x1f\x7f\\]{1,64}")


def is_valid_model_id(value: str) -> bool:
    """Model ids are as free as Clarifai took them ('我的新模型', 'the/model': a '/' travels as %2F,
    see visionloop/http/slashes.py): 1-64 printable characters, no backslash, not only spaces."""
    return bool(_MODEL_ID.fullmatch(value)) and bool(value.strip())


def is_valid_client_id(value: str) -> bool:
    """Client ids: 1-64 characters of letters, digits, ``_ . : -``, starting alphanumeric."""
    return bool(_CLIENT_ID.fullmatch(value))
