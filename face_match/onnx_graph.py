"""In-memory rewrite of OpenCV-zoo int8 "block-quantised" ONNX graphs so onnxruntime can run them.

The YuNet/SFace files store every weight as int8 + scale + zero point behind a `DequantizeLinear`
node with a `block_size` attribute. onnxruntime rejects `block_size` when the scale has one element,
and SFace also lists its weights as graph inputs (so they could be overridden at run time). Folding
each `DequantizeLinear` whose inputs are all initializers into one fp32 initializer fixes both and is
faster than dequantising per call; outputs then match `cv2.dnn` to ~5e-6. The file on disk (verified
by sha256 in the registry) is never modified.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _dequantize(q: np.ndarray, scale: np.ndarray, zero: np.ndarray | None, axis: int, block: int) -> np.ndarray:
    x = q.astype(np.float32)
    z = np.zeros_like(scale, dtype=np.float32) if zero is None else zero.astype(np.float32)
    s = scale.astype(np.float32)
    if s.size == 1:
        return (x - z.reshape(())) * s.reshape(())
    axis = axis % x.ndim
    if block > 0:
        # blocked: scale has ceil(dim / block) entries along `axis`, other dims equal to x's
        s = np.repeat(s, block, axis=axis).take(np.arange(x.shape[axis]), axis=axis)
        z = np.repeat(z, block, axis=axis).take(np.arange(x.shape[axis]), axis=axis)
        return (x - z) * s
    # per-axis: 1-D scale along `axis`
    shape = [1] * x.ndim
    shape[axis] = -1
    return (x - z.reshape(shape)) * s.reshape(shape)


def fold_dequantize(path: Path) -> bytes:
    """The model at `path` with weight dequantisation folded to fp32 and unused weight graph inputs removed."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    keep_nodes = []
    new_inits: dict[str, onnx.TensorProto] = {}
    used_by_dq: set[str] = set()
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and all(n in inits for n in node.input if n):
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            q = numpy_helper.to_array(inits[node.input[0]])
            scale = numpy_helper.to_array(inits[node.input[1]])
            zero = numpy_helper.to_array(inits[node.input[2]]) if len(node.input) > 2 and node.input[2] else None
            w = _dequantize(q, scale, zero, int(attrs.get("axis", 1)), int(attrs.get("block_size", 0)))
            new_inits[node.output[0]] = numpy_helper.from_array(w.astype(np.float32), node.output[0])
            used_by_dq.update(n for n in node.input if n)
        else:
            keep_nodes.append(node)
    still_used = {n for node in keep_nodes for n in node.input}
    del graph.node[:]
    graph.node.extend(keep_nodes)
    remaining = [i for name, i in inits.items() if name not in used_by_dq or name in still_used]
    del graph.initializer[:]
    graph.initializer.extend(remaining + list(new_inits.values()))
    # SFace also declares every weight as a graph input no node reads; keep only the image input
    all_inits = {i.name for i in graph.initializer}
    consumed = {n for node in graph.node for n in node.input}
    real_inputs = [i for i in graph.input if i.name not in all_inits and i.name in consumed]
    del graph.input[:]
    graph.input.extend(real_inputs)
    return model.SerializeToString()
