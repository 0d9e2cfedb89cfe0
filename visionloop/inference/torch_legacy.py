"""Read a state dict saved in torch's legacy (pre-zip) format, without torch.

Why: the bundled MobileNetV2 weights ship as a ``.pth`` file, and visionloop must not depend on
torch at run time. The legacy layout is: three small pickles (magic number, protocol version,
system info), the state-dict pickle whose tensors point at storages through persistent ids, a
pickled list of storage keys, then each storage as an 8-byte little-endian element count
followed by its raw little-endian data.

The unpickler is restricted: it resolves only the handful of globals such a file needs, each to
a function of ours, so loading an untrusted file cannot run arbitrary code.
"""

from __future__ import annotations

import collections
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
}


class LegacyCheckpointError(ValueError):
    """The file is not a legacy torch checkpoint this reader understands."""


@dataclass(frozen=True)
class _StorageType:
    dtype: np.dtype


@dataclass
class _Storage:
    """A storage named in the pickle; its data is filled in once the raw section is read."""

    dtype: np.dtype
    size: int
    data: np.ndarray | None = None


@dataclass(frozen=True)
class _TensorRef:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]

    def materialise(self) -> np.ndarray:
        assert self.storage.data is not None
        if not self.shape:
            return np.array(self.storage.data[self.offset])
        itemsize = self.storage.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            self.storage.data[self.offset :],
            shape=self.shape,
            strides=tuple(s * itemsize for s in self.strides),
            writeable=False,
        )
        return np.ascontiguousarray(view)


def _rebuild_tensor(storage: _Storage, offset: int, shape: tuple[int, ...], strides: tuple[int, ...],
                    *_ignored: Any) -> _TensorRef:
    """Stand-in for ``torch._utils._rebuild_tensor(_v2)``: records where the tensor lives."""
    return _TensorRef(storage, offset, tuple(shape), tuple(strides))


def _ordered_dict(*args: Any) -> collections.OrderedDict:
    return collections.OrderedDict(*args)


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], storages: dict[str, _Storage]) -> None:
        super().__init__(file)
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return _ordered_dict
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a weights file")

    def persistent_load(self, pid: Any) -> _Storage:
        # ('storage', storage_type, key, location, numel, view_metadata)
        kind, storage_type, key, _location, size, view = pid
        if kind != "storage" or not isinstance(storage_type, _StorageType) or view is not None:
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        return self._storages.setdefault(key, _Storage(storage_type.dtype, int(size)))


def load_state_dict(path: Path | str) -> dict[str, np.ndarray]:
    """Return the checkpoint's tensors as contiguous numpy arrays, in file order."""
    storages: dict[str, _Storage] = {}
    with open(path, "rb") as f:
        plain = _RestrictedUnpickler(f, storages)
        if plain.load() != MAGIC_NUMBER:
            raise LegacyCheckpointError(f"{path}: not a legacy torch checkpoint (bad magic number)")
        if plain.load() != 1001:
            raise LegacyCheckpointError(f"{path}: unsupported protocol version")
        sys_info = plain.load()
        if not sys_info.get("little_endian", False):
            raise LegacyCheckpointError(f"{path}: big-endian checkpoints are not supported")
        state = _RestrictedUnpickler(f, storages).load()
        if not isinstance(state, dict) or not all(isinstance(v, _TensorRef) for v in state.values()):
            raise LegacyCheckpointError(f"{path}: not a state dict of tensors")
        keys = _RestrictedUnpickler(f, storages).load()
        for key in keys:
            storage = storages[key]
            count = int(np.frombuffer(f.read(8), "<i8")[0])
            raw = f.read(count * storage.dtype.itemsize)
            if count != storage.size or len(raw) != count * storage.dtype.itemsize:
                raise LegacyCheckpointError(f"{path}: storage {key} is truncated")
            storage.data = np.frombuffer(raw, storage.dtype)
    return {name: ref.materialise() for name, ref in state.items()}
