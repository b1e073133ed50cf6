"""ONNX Runtime inference for mean-pooled sentence-transformers BERT encoders.

Why: a search encodes one short query, and PyTorch's per-operator overhead dominates
at that size: all-MiniLM-L6-v2 took about 11 ms a query through sentence-transformers
on the 2-core machine, and far longer when other processes compete for the cores.
ONNX Runtime runs the same graph (exported from the same weights, outputs equal to
within 2e-7) with one fused call.

The graph is exported once per model version with ``torch.onnx.export`` (the
TorchScript exporter; it needs the ``onnx`` package) into the model cache
(:func:`engine.cache.cache_root`), written atomically under a lock so that parallel
ingest workers export it once. It contains the transformer, the attention-masked
mean pooling and the L2 normalisation, i.e. the whole sentence-transformers pipeline
of models whose modules are ``Transformer -> Pooling(mean) -> Normalize``.
Tokenisation uses the model folder's ``tokenizer.json`` through ``tokenizers`` with
the model's ``max_seq_length`` truncation, as sentence-transformers does.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from engine.atomic import fsync_dir
from engine.cache import cache_root
from engine.errors import MissingDependencyError, NotFoundError, VidseekError

__all__ = ["OnnxSentenceEncoder", "onnx_available", "export_onnx"]

log = logging.getLogger(__name__)

OPSET = 17


def onnx_available() -> bool:
    """True when ONNX Runtime and the exporter's ``onnx`` package are installed (found,
    not imported: importing ``onnx`` costs 0.5 s and only the one-time export needs it)."""
    from importlib.util import find_spec

    return all(find_spec(name) is not None for name in ("onnx", "onnxruntime"))


def _check_pipeline(model_dir: Path) -> int:
    """The model's max_seq_length, after checking it is Transformer -> mean Pooling -> Normalize."""
    modules = json.loads((model_dir / "modules.json").read_text())
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text()) if (model_dir / "1_Pooling").is_dir() else {}
    if kinds[:2] != ["Transformer", "Pooling"] or not pooling.get("pooling_mode_mean_tokens") or any(
        pooling.get(k) for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens")
    ):
        raise VidseekError(
            f"{model_dir}: the ONNX path handles Transformer -> mean Pooling [-> Normalize] models, not {kinds}",
            hint="use the torch backend for this model (VIDSEEK_TEXT_BACKEND=torch)",
        )
    cfg = model_dir / "sentence_bert_config.json"
    return int(json.loads(cfg.read_text()).get("max_seq_length", 512)) if cfg.exists() else 512


def export_onnx(model_dir: Path, out: Path) -> None:
    """Export the sentence-transformers model in ``model_dir`` to ``out`` (atomic)."""
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise MissingDependencyError("sentence-transformers", "exporting the text encoder to ONNX") from e

    class _Pipeline(torch.nn.Module):
        def __init__(self, bert: Any) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            h = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            v = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(v, p=2.0, dim=-1)

    st = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    pipe = _Pipeline(st[0].auto_model).eval()
    sample = st.tokenizer(["an example sentence"], return_tensors="pt", return_token_type_ids=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on tracing are not for users
            torch.onnx.export(
                pipe, (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"]), str(tmp),
                input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["embedding"],
                dynamic_axes={n: {0: "batch", 1: "tokens"} for n in ("input_ids", "attention_mask", "token_type_ids")}
                | {"embedding": {0: "batch"}},
                opset_version=OPSET, dynamo=False,
            )
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
        fsync_dir(out.parent)
    finally:
        tmp.unlink(missing_ok=True)


class OnnxSentenceEncoder:
    """Encode texts with an exported sentence-transformers model through ONNX Runtime.

    Thread-safe: ORT sessions may be run from several threads. ``threads`` sets ORT's
    intra-op pool (0: ORT's default, one per physical core).
    """

    def __init__(self, model_dir: Path, cache_key: str, *, threads: int = 0, batch_size: int = 64) -> None:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as e:
            raise MissingDependencyError("onnxruntime", "the ONNX text encoder backend") from e
        model_dir = Path(model_dir)
        if not (model_dir / "tokenizer.json").exists():
            raise NotFoundError(f"{model_dir} has no tokenizer.json", hint="use the torch backend for this model")
        self.max_seq_length = _check_pipeline(model_dir)
        self.batch_size = batch_size
        self.path = self._ensure_exported(model_dir, cache_key)
        tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tok.enable_truncation(max_length=self.max_seq_length)
        tok.no_padding()
        self._tok = tok
        self._pad_id = int(tok.token_to_id("[PAD]") or 0)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # ORT's idle pool threads spin after a run and took the cores from whatever a
        # search runs next: the E5 intent pass after it went from 10 to 21-24 ms
        # (p50, idle 2-core machine) while this encoder's own time did not change.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])

    @staticmethod
    def exported_path(cache_key: str) -> Path:
        """Where the export of ``cache_key`` is (or will be) in the model cache."""
        return cache_root() / "onnx" / f"{cache_key}.opset{OPSET}.onnx"

    @staticmethod
    def _ensure_exported(model_dir: Path, cache_key: str) -> Path:
        path = OnnxSentenceEncoder.exported_path(cache_key)
        folder = path.parent
        folder.mkdir(parents=True, exist_ok=True)
        if path.exists():
            return path
        with open(folder / f".{cache_key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be exporting it now
            if not path.exists():
                log.info("exporting %s to ONNX at %s (once)", model_dir, path)
                export_onnx(model_dir, path)
        return path

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(n, d) float32 unit vectors, in the order of ``texts``."""
        encs = self._tok.encode_batch(list(texts))
        order = np.argsort([len(e.ids) for e in encs], kind="stable")  # batches of similar length pad less
        out: list[np.ndarray] = [None] * len(encs)  # type: ignore[list-item]
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            width = max(len(encs[i].ids) for i in rows)
            ids = np.full((len(rows), width), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            types = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                e = encs[i]
                ids[r, : len(e.ids)] = e.ids
                mask[r, : len(e.ids)] = 1
                types[r, : len(e.ids)] = e.type_ids
            emb = self._session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})[0]
            for r, i in enumerate(rows):
                out[i] = emb[r]
        return np.stack(out).astype(np.float32, copy=False)
