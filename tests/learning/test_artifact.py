"""Fitted models as bytes: one .npz-plus-JSON format, checked on reading."""

from __future__ import annotations

import numpy as np
import pytest

from visionloop.learning.artifact import pack, unpack


def test_an_artifact_round_trips_and_refuses_another_format() -> None:
    data = pack({"format": "x-1", "n": 2}, {"w": np.arange(3.0)})
    meta, arrays = unpack(data, "x-1")
    assert meta == {"format": "x-1", "n": 2} and arrays["w"].tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(ValueError, match="not a y-1 artifact: 'x-1'"):
        unpack(data, "y-1")
