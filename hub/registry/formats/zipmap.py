"""Classifier graphs whose probabilities end in a ``ZipMap`` (a sequence of maps, the
default of skl2onnx and of many exported scikit-learn models) serve the same
probabilities as a ``[batch, classes]`` tensor under the same output name."""

from __future__ import annotations


def without_zipmap(onnx_bytes: bytes) -> bytes | None:
    """The graph with each ``ZipMap`` feeding a graph output replaced by an ``Identity``
    of its probability tensor; ``None`` when there is none to replace."""
    import onnx  # lazy: onnx takes 0.14 s; only ONNX uploads need it
    from onnx import TensorProto, helper

    try:
        model = onnx.load_from_string(onnx_bytes)
    except Exception:  # not parseable here: ONNX Runtime's own refusal stands
        return None
    graph = model.graph
    outputs = {o.name: i for i, o in enumerate(graph.output)}
    zipmaps = [n for n in graph.node if n.op_type == "ZipMap" and n.output[0] in outputs]
    for node in zipmaps:
        name = node.output[0]
        position = list(graph.node).index(node)
        graph.node.remove(node)
        graph.node.insert(position, helper.make_node("Identity", [node.input[0]], [name]))
        graph.output[outputs[name]].CopyFrom(
            helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", "classes"])
        )
    return model.SerializeToString() if zipmaps else None
