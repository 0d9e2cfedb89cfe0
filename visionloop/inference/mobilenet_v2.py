"""Build torchvision's MobileNetV2 as an ONNX graph from its state dict.

Why: onnxruntime runs the network fast on CPU without torch, and building the graph ourselves
from the published weights means nothing is downloaded or converted outside this process.
BatchNorm is folded into the preceding convolution, ReLU6 is ``Clip(0, 6)`` and depthwise
convolutions use ``group``. The graph has one input, ``images`` (N, 3, 224, 224) float32 and
normalised, and three outputs: ``logits`` (N, 1000), ``features`` (N, 1280), the pooled
penultimate layer, and ``feature_map`` (N, 1280, H/32, W/32), that layer before pooling. The
network is fully convolutional, so the input's height and width may be any multiple of 32: a
detector reads the feature map of the whole image at a larger size (onnxruntime computes only
the outputs asked for). ``mid_feature_map`` (N, 96, H/16, W/16) is the last stride-16 block's.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

INPUT = "images"
LOGITS = "logits"
FEATURES = "features"
FEATURE_MAP = "feature_map"
MID_FEATURE_MAP = "mid_feature_map"
MID_BLOCK = 13  # the last stride-16 block (96 channels): finer places than the last layer's
OPSET = 17
BN_EPS = 1e-5

# torchvision's inverted-residual settings: expansion t, output channels c, repeats n, stride s.
_SETTINGS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)


class _GraphBuilder:
    """Accumulates nodes and folded weights while walking the network in torchvision's order."""

    def __init__(self, state: Mapping[str, np.ndarray]) -> None:
        self.state = state
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.used: set[str] = set()
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def _tensor(self, key: str) -> np.ndarray:
        self.used.add(key)
        return np.asarray(self.state[key], dtype=np.float32)

    def _const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), name))
        return name

    def conv_bn(self, x: str, conv: str, bn: str, *, stride: int = 1, groups: int = 1,
                relu6: bool = True) -> str:
        """Conv (no bias) followed by BatchNorm, folded into one Conv; optionally ReLU6."""
        weight = self._tensor(f"{conv}.weight")
        gamma, beta = self._tensor(f"{bn}.weight"), self._tensor(f"{bn}.bias")
        mean, var = self._tensor(f"{bn}.running_mean"), self._tensor(f"{bn}.running_var")
        self.used.add(f"{bn}.num_batches_tracked")
        scale = gamma / np.sqrt(var + BN_EPS)
        w = self._const(f"{conv}.w", weight * scale[:, None, None, None])
        b = self._const(f"{conv}.b", beta - mean * scale)
        k = weight.shape[-1]
        pad = (k - 1) // 2
        y = self._name("conv")
        self.nodes.append(helper.make_node(
            "Conv", [x, w, b], [y], kernel_shape=[k, k], strides=[stride, stride],
            pads=[pad] * 4, group=groups))
        if not relu6:
            return y
        out = self._name("relu6")
        self.nodes.append(helper.make_node("Clip", [y, "zero", "six"], [out]))
        return out

    def inverted_residual(self, x: str, index: int, inp: int, oup: int, stride: int, expand: int) -> str:
        prefix = f"features.{index}.conv"
        hidden = inp * expand
        h, layer = x, 0
        if expand != 1:
            h = self.conv_bn(h, f"{prefix}.0.0", f"{prefix}.0.1")
            layer = 1
        h = self.conv_bn(h, f"{prefix}.{layer}.0", f"{prefix}.{layer}.1", stride=stride, groups=hidden)
        h = self.conv_bn(h, f"{prefix}.{layer + 1}", f"{prefix}.{layer + 2}", relu6=False)
        if stride == 1 and inp == oup:
            out = self._name("add")
            self.nodes.append(helper.make_node("Add", [x, h], [out]))
            return out
        return h


def build_mobilenet_v2(state: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """Return the checked ONNX model for a torchvision ``mobilenet_v2`` state dict."""
    g = _GraphBuilder(state)
    g._const("zero", np.array(0.0))
    g._const("six", np.array(6.0))
    x = g.conv_bn(INPUT, "features.0.0", "features.0.1", stride=2)
    inp, index = 32, 1
    for expand, channels, repeats, stride in _SETTINGS:
        for i in range(repeats):
            x = g.inverted_residual(x, index, inp, channels, stride if i == 0 else 1, expand)
            if index == MID_BLOCK:
                g.nodes.append(helper.make_node("Identity", [x], [MID_FEATURE_MAP]))
            inp, index = channels, index + 1
    x = g.conv_bn(x, f"features.{index}.0", f"features.{index}.1")
    g.nodes.append(helper.make_node("Identity", [x], [FEATURE_MAP]))
    g.nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"]))
    g.nodes.append(helper.make_node("Flatten", ["pooled"], [FEATURES], axis=1))
    w = g._const("classifier.w", g._tensor("classifier.1.weight"))
    b = g._const("classifier.b", g._tensor("classifier.1.bias"))
    g.nodes.append(helper.make_node("Gemm", [FEATURES, w, b], [LOGITS], transB=1))

    unused = set(state) - g.used
    if unused:
        raise ValueError(f"state dict has tensors the MobileNetV2 graph does not use: {sorted(unused)[:5]}")
    graph = helper.make_graph(
        g.nodes, "mobilenet_v2",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info(LOGITS, TensorProto.FLOAT, ["N", 1000]),
         helper.make_tensor_value_info(FEATURES, TensorProto.FLOAT, ["N", 1280]),
         helper.make_tensor_value_info(FEATURE_MAP, TensorProto.FLOAT, ["N", 1280, "h", "w"]),
         helper.make_tensor_value_info(MID_FEATURE_MAP, TensorProto.FLOAT, ["N", 96, "h2", "w2"])],
        g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="visionloop")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
