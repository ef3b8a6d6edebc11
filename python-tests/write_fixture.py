"""Write a small conv + MatMul model, an input and the CPU EP's output as raw float32 files, for the C and Rust
consumer tests (which have no ONNX builder of their own).

usage: python write_fixture.py OUT_DIR   →  OUT_DIR/{model.onnx, input.f32, expected.f32}; input shape 1,3,8,8
"""

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

INPUT_SHAPE = (1, 3, 8, 8)


def small_conv_model() -> onnx.ModelProto:
    rng = np.random.default_rng(11)
    w1 = (rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32)
    b1 = rng.standard_normal(8).astype(np.float32)
    w2 = (rng.standard_normal((4, 8, 1, 1)) * 0.3).astype(np.float32)
    fc = (rng.standard_normal((4 * 8 * 8, 10)) * 0.05).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2"),
        helper.make_node("Flatten", ["c2"], ["f"], name="flatten"),
        helper.make_node("MatMul", ["f", "fc"], ["y"], name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "fixture_model",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(INPUT_SHAPE))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        [numpy_helper.from_array(a, n) for a, n in [(w1, "w1"), (b1, "b1"), (w2, "w2"), (fc, "fc")]],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    return model


def write(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    model = small_conv_model()
    onnx.save(model, out_dir / "model.onnx")
    x = np.random.default_rng(5).standard_normal(INPUT_SHAPE).astype(np.float32)
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (expected,) = ref.run(None, {"x": x})
    x.tofile(out_dir / "input.f32")
    expected.astype(np.float32).tofile(out_dir / "expected.f32")


if __name__ == "__main__":
    write(Path(sys.argv[1]))
