"""The legacy torch checkpoint reader: real weights, a hand-made file, and a malicious one."""

from __future__ import annotations

import collections
import contextlib
import io
import pickle
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from visionloop.inference.backbone import mobilenet_weights_path
from visionloop.inference.torch_legacy import MAGIC_NUMBER, LegacyCheckpointError, load_state_dict


@contextlib.contextmanager
def _fake_torch() -> Iterator[types.SimpleNamespace]:
    """Importable stand-ins for the torch globals a legacy checkpoint names, so pickle can write them."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args: object) -> None: ...

    _rebuild_tensor_v2.__module__ = utils.__name__
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2  # type: ignore[attr-defined]
    storages = {}
    for name in ("FloatStorage", "LongStorage"):
        storages[name] = type(name, (), {"__module__": "torch", "__qualname__": name})
        setattr(torch, name, storages[name])
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules.update({"torch": torch, "torch._utils": utils})
    try:
        yield types.SimpleNamespace(rebuild=_rebuild_tensor_v2, **storages)
    finally:
        for key, module in saved.items():
            if module is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = module


class _Tensor:
    def __init__(self, fake: types.SimpleNamespace, key: str, data: np.ndarray,
                 shape: tuple[int, ...], strides: tuple[int, ...], offset: int) -> None:
        kind = fake.FloatStorage if data.dtype == np.float32 else fake.LongStorage
        self.storage = ("storage", kind, key, "cpu", int(data.size), None)
        self.args = (offset, shape, strides, False, collections.OrderedDict())
        self.rebuild = fake.rebuild

    def __reduce__(self) -> tuple:
        return self.rebuild, (self.storage, *self.args)


class _LegacyPickler(pickle.Pickler):
    def persistent_id(self, obj: object) -> object:
        return obj if isinstance(obj, tuple) and obj[:1] == ("storage",) else None


def _write_legacy(path: Path, tensors: dict[str, tuple[np.ndarray, tuple[int, ...], tuple[int, ...], int]]) -> None:
    """Write a legacy checkpoint as torch did: each tensor is (storage data, shape, strides, offset)."""
    out = io.BytesIO()
    for header in (MAGIC_NUMBER, 1001, {"protocol_version": 1001, "little_endian": True}):
        pickle.dump(header, out, protocol=2)
    with _fake_torch() as fake:
        state = collections.OrderedDict(
            (name, _Tensor(fake, str(i), *spec)) for i, (name, spec) in enumerate(tensors.items()))
        _LegacyPickler(out, protocol=2).dump(state)
    pickle.dump([str(i) for i in range(len(tensors))], out, protocol=2)
    for data, *_ in tensors.values():
        out.write(np.array([data.size], "<i8").tobytes() + data.tobytes())
    path.write_bytes(out.getvalue())


def test_reads_the_bundled_mobilenet_weights() -> None:
    state = load_state_dict(mobilenet_weights_path())
    assert len(state) == 314
    learned = [v for k, v in state.items() if k.endswith(("weight", "bias"))]
    assert sum(int(v.size) for v in learned) == 3_504_872  # torchvision's documented parameter count
    assert state["features.0.0.weight"].shape == (32, 3, 3, 3)
    assert state["classifier.1.weight"].shape == (1000, 1280)
    assert state["features.0.0.weight"].dtype == np.float32
    assert all(np.isfinite(v).all() for v in state.values())


def test_reads_strided_and_offset_tensors(tmp_path: Path) -> None:
    storage = np.arange(12, dtype="<f4")
    path = tmp_path / "tiny.pth"
    _write_legacy(path, {
        "matrix": (storage, (3, 4), (4, 1), 0),
        "transposed": (storage, (4, 3), (1, 4), 0),
        "tail": (storage, (2,), (1,), 10),
        "count": (np.array([7], "<i8"), (), (), 0),
    })
    state = load_state_dict(path)
    np.testing.assert_array_equal(state["matrix"], storage.reshape(3, 4))
    np.testing.assert_array_equal(state["transposed"], storage.reshape(3, 4).T)
    np.testing.assert_array_equal(state["tail"], [10, 11])
    assert state["count"] == 7


def test_refuses_a_checkpoint_that_would_run_code(tmp_path: Path) -> None:
    out = io.BytesIO()
    for header in (MAGIC_NUMBER, 1001, {"little_endian": True}):
        pickle.dump(header, out, protocol=2)
    out.write(b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00true\x85R.")
    path = tmp_path / "evil.pth"
    path.write_bytes(out.getvalue())
    with pytest.raises(pickle.UnpicklingError, match="os.system is not allowed"):
        load_state_dict(path)


def test_refuses_a_file_that_is_not_a_legacy_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    path.write_bytes(pickle.dumps(42))
    with pytest.raises(LegacyCheckpointError, match="magic number"):
        load_state_dict(path)
