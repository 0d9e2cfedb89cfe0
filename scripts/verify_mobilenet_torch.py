"""Check the ONNX MobileNetV2 against torch running the same architecture and weights.

Why: the ONNX graph is hand-built (BatchNorm folded, ReLU6 as Clip), so it must be compared with
an independent implementation. Torch is never a visionloop dependency: run this in a throwaway
virtualenv that has torch, numpy and pillow, pointing it at the visionloop checkout, e.g.

    python -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch numpy pillow
    /tmp/torchvenv/bin/python scripts/verify_mobilenet_torch.py --onnx-logits /tmp/onnx.npz

The ``--onnx-logits`` file is written first by the visionloop venv with ``--dump``:

    .venv/bin/python scripts/verify_mobilenet_torch.py --dump /tmp/onnx.npz
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def sample_batch(seed: int = 0) -> np.ndarray:
    """Random normal inputs plus a real-looking gradient image, NCHW float32."""
    rng = np.random.default_rng(seed)
    batch = rng.standard_normal((4, 3, 224, 224)).astype(np.float32)
    batch[0] = np.linspace(-2, 2, 224 * 224 * 3, dtype=np.float32).reshape(3, 224, 224)
    return batch


def dump(path: Path) -> None:
    """Run visionloop's ONNX backbone (in the visionloop venv) and save inputs and outputs."""
    sys.path.insert(0, str(ROOT))
    from visionloop.inference.backbone import Backbone, mobilenet_weights_path

    batch = sample_batch()
    try:  # real photos too, when scikit-image (a test dependency) is installed
        from PIL import Image
        from skimage import data

        from visionloop.inference.preprocess import imagenet_batch
        photos = [Image.fromarray(getattr(data, name)()) for name in ("chelsea", "coffee", "astronaut")]
        batch = np.concatenate([batch, imagenet_batch(photos)])
    except ImportError:
        pass
    logits, features = Backbone().logits(batch)
    np.savez(path, batch=batch, logits=logits, features=features, weights=str(mobilenet_weights_path()))
    print(f"wrote {path}")


def compare(path: Path) -> None:
    """Run a hand-written torch MobileNetV2 on the same inputs and print the differences."""
    import torch
    from torch import nn

    def conv_bn(inp: int, oup: int, k: int, stride: int, groups: int = 1, relu: bool = True) -> nn.Sequential:
        layers: list[nn.Module] = [nn.Conv2d(inp, oup, k, stride, (k - 1) // 2, groups=groups, bias=False),
                                   nn.BatchNorm2d(oup)]
        if relu:
            layers.append(nn.ReLU6(inplace=True))
        return nn.Sequential(*layers)

    class InvertedResidual(nn.Module):
        def __init__(self, inp: int, oup: int, stride: int, expand: int) -> None:
            super().__init__()
            hidden = inp * expand
            self.use_res = stride == 1 and inp == oup
            layers: list[nn.Module] = []
            if expand != 1:
                layers.append(conv_bn(inp, hidden, 1, 1))
            layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden),
                       nn.Conv2d(hidden, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup)]
            self.conv = nn.Sequential(*layers)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.conv(x) if self.use_res else self.conv(x)

    class MobileNetV2(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                        (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
            features: list[nn.Module] = [conv_bn(3, 32, 3, 2)]
            inp = 32
            for t, c, n, s in settings:
                for i in range(n):
                    features.append(InvertedResidual(inp, c, s if i == 0 else 1, t))
                    inp = c
            features.append(conv_bn(inp, 1280, 1, 1))
            self.features = nn.Sequential(*features)
            self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 1000))

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            f = nn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1)
            return self.classifier(f), f

    saved = np.load(path)
    model = MobileNetV2().eval()
    model.load_state_dict(torch.load(str(saved["weights"]), map_location="cpu", weights_only=True))
    with torch.no_grad():
        logits, features = (t.numpy() for t in model(torch.from_numpy(saved["batch"])))
    print(f"torch {torch.__version__}")
    print(f"max |logits diff|   = {np.abs(logits - saved['logits']).max():.3g} "
          f"(logit range {logits.min():.1f}..{logits.max():.1f})")
    print(f"max |features diff| = {np.abs(features - saved['features']).max():.3g}")
    print(f"top-1 agree: {(logits.argmax(1) == saved['logits'].argmax(1)).all()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--dump", type=Path, help="write ONNX inputs/outputs (visionloop venv)")
    group.add_argument("--onnx-logits", type=Path, help="compare with torch (torch venv)")
    args = parser.parse_args()
    dump(args.dump) if args.dump else compare(args.onnx_logits)


if __name__ == "__main__":
    main()
