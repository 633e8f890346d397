"""ONNX export of gicho's BERT and ViT models, checked against gicho before it is written.

Three graphs, each with a dynamic batch axis (``batch``):

* ``what="classifier"`` on :class:`~gicho.models.bert.BertForSequenceClassification`:
  ``input_ids``, ``attention_mask``, ``token_type_ids`` (int64, (batch, sequence), ``sequence``
  dynamic up to ``max_len``) → ``logits`` (batch, n_labels);
* ``what="classifier"`` on :class:`~gicho.models.vit.ViTForImageClassification` (every option:
  conv or shifted stem, LSA attention, DeiT's distillation token): ``pixel_values`` float32
  (batch, C, H, W) at the model's image size → ``logits`` (batch, n_labels), with a
  distillation token the mean of its two heads, as gicho predicts;
* ``what="embeddings"`` on any BERT head: the same three inputs → ``embeddings`` (batch, D),
  the L2-normalised mean of the real tokens' last hidden states, which
  :meth:`~gicho.models.bert.BertPreTrainedModel.embed` and
  :func:`gicho.tasks.bert_text.sentence_embeddings` compute (sentence-transformers' recipe).

Everything else (the seq2seq model, the tabular sequence classifier, the small CNN, the MLM
logits, a ViT without a head) is refused with the list of what is supported.

The exporter is torch's TorchScript tracer (``torch.onnx.export(..., dynamo=False)``, opset
:data:`ONNX_OPSET`): it needs only ``onnx``, and takes about a second where the ``dynamo``
exporter (which needs ``onnxscript`` too) took several for the same tiny model, with the same
numbers. A tracer records one run of Python, so every decision the model takes from the data
would become a constant of the graph; gicho's fast paths decide from the data (unpadding reads
the lengths, CPU chunking the batch size), so under tracing the encoder runs its plain padded
pass (:func:`gicho.nn.execution.static_shapes`), whose graph holds for any batch, length and
padding. Why check anyway: the rule is that what gicho writes for another library computes
what gicho computes, or is refused. The graph is run by ``onnxruntime`` on the export's example
and on a second input of another batch size (and, for text, another length and padding), and
compared with gicho's eager output; beyond ``atol`` nothing is written and ``ValueError`` says
by how much. The file is written whole (a temporary file, then a rename), with ONNX metadata
saying what the graph is (:func:`export_onnx`).
"""

from __future__ import annotations

import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gicho._io import atomic_write_bytes
from gicho.models.bert import BertForSequenceClassification, BertPreTrainedModel
from gicho.models.vit import ViTForImageClassification, ViTPretrained
from gicho.rundir import model_directory

__all__ = ["EXPORT_KINDS", "ONNX_OPSET", "TOLERANCE", "OnnxExport", "export_onnx"]

ONNX_OPSET = 17  # LayerNormalization is an ONNX operator from 17 on (one node, not seven)
TOLERANCE = 1e-4  # largest |onnxruntime - gicho| accepted, float32 outputs
EXPORT_KINDS = ("classifier", "embeddings")
SUPPORTED = ("BertForSequenceClassification (what='classifier' or 'embeddings'), any other BERT head "
             "(BertModel, BertForMaskedLM: what='embeddings') and ViTForImageClassification "
             "(what='classifier')")
TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# The example the graph is traced on and the second input it is checked on: (batch, length)
EXAMPLE_SHAPE, PROBE_SHAPE = (2, 8), (3, 5)
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` wrote.

    Attributes
    ----------
    path : Path
    what : {"classifier", "embeddings"}
    input_names, output_name : the graph's inputs and its one output.
    max_abs_diff : float or None
        Largest ``|onnxruntime - gicho|`` over the checked inputs; None when not checked.
    checked_shapes : tuple of tuple of int
        The shape of the first input of each checked batch (the traced example first); empty
        when not checked.
    metadata : dict of str to str
        The ONNX ``metadata_props`` written into the file.
    """

    path: Path
    what: str
    input_names: tuple[str, ...]
    output_name: str
    max_abs_diff: float | None
    checked_shapes: tuple[tuple[int, ...], ...]
    metadata: dict[str, str]


class _Graph(nn.Module):
    """The model's forward as the graph computes it: positional tensors in, one tensor out."""

    def __init__(self, model: nn.Module, what: str) -> None:
        super().__init__()
        self.model, self.what = model, what

    def forward(self, *inputs: Tensor) -> Tensor:
        if self.what == "embeddings":
            return self.model.embed(*inputs)  # (B, D)
        return self.model(*inputs)["logits"]  # (B, n_labels)


def export_onnx(model_or_dir: nn.Module | str | os.PathLike, path: str | os.PathLike, *,
                what: str | None = None, check: bool = True, atol: float = TOLERANCE,
                opset: int = ONNX_OPSET) -> OnnxExport:
    """Write ``model_or_dir`` as an ONNX graph to ``path``, checked against gicho first.

    Parameters
    ----------
    model_or_dir : nn.Module, or a model directory or run directory
        A gicho BERT or ViT model, or a directory that :func:`gicho.models.from_pretrained`
        loads (a run directory: its ``model/``).
    path : str or PathLike
        The ``.onnx`` file to write (replaced whole if it exists).
    what : {"classifier", "embeddings"}, optional
        The graph: the classifier's ``logits``, or a BERT's sentence ``embeddings``. Default:
        ``"classifier"`` for a model with a classification head (BERT or ViT), ``"embeddings"``
        for a BERT without one (``BertModel``, ``BertForMaskedLM``).
    check : bool
        Run the graph in ``onnxruntime`` and compare with gicho (needs ``onnxruntime``, in
        gicho's ``onnx`` extra); False writes an unchecked file.
    atol : float
        Largest accepted ``|onnxruntime - gicho|``.
    opset : int
        ONNX opset (at least 14: the exporter's fused attention needs it).

    Returns
    -------
    OnnxExport
        The file, its inputs and output, the measured difference and the metadata: ``gicho.what``,
        ``gicho.inputs`` and ``gicho.outputs`` (JSON lists), ``gicho.label_names`` (JSON, the
        classifier's ``config.label_names`` or null), ``gicho.model_type``, ``gicho.architecture``,
        ``gicho.preprocessing`` (in words: which tokenizer or image processor makes the inputs),
        ``gicho.max_len`` (text) or ``gicho.image_size`` (images), ``gicho.max_abs_diff``.

    Raises
    ------
    ValueError
        A model that is not supported (naming what is), a ``what`` it has no graph for, a model
        that is not float32, or a graph whose outputs differ from gicho's by more than ``atol``
        (then nothing is written).
    ImportError
        ``onnx`` (or, with ``check``, ``onnxruntime``) is not installed.
    """
    _require("onnx")
    if check:
        _require("onnxruntime")
    source = None
    if not isinstance(model_or_dir, nn.Module):
        source = model_directory(model_or_dir)
        from gicho.models import from_pretrained

        model_or_dir = from_pretrained(source)
    model = model_or_dir
    what = _check_export(model, what)
    if not isinstance(atol, int | float) or isinstance(atol, bool) or not atol > 0:
        raise ValueError(f"argument `atol` must be a number > 0; got {atol!r}")
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < 14:
        raise ValueError(f"argument `opset` must be an integer >= 14 (fused attention); got {opset!r}")
    text = isinstance(model, BertPreTrainedModel)
    input_names = TEXT_INPUTS if text else ("pixel_values",)
    output_name = "logits" if what == "classifier" else "embeddings"
    example, probe = (_text_inputs(model, shape, seed) if text else _image_inputs(model, shape[0], seed)
                      for shape, seed in ((EXAMPLE_SHAPE, 0), (PROBE_SHAPE, 1)))
    was_training = model.training
    graph = _Graph(model, what).eval()
    try:
        data = _trace(graph, example, input_names, output_name, text, opset)
        with torch.no_grad():
            expected = [graph(*inputs).float().cpu().numpy() for inputs in (example, probe)]
    finally:
        model.train(was_training)
    metadata = _metadata(model, what, input_names, output_name, source)
    diff = None
    if check:
        try:
            diff = _max_abs_diff(data, input_names, (example, probe), expected)
        except ValueError as exc:
            raise ValueError(f"nothing was written to {path}: {exc}") from None
        if not diff <= atol:  # NaN too
            raise ValueError(f"the ONNX graph of this {type(model).__name__} computes outputs that differ from "
                             f"gicho's by {diff:.3g} (more than atol={atol:g}); nothing was written to {path}")
        metadata["gicho.max_abs_diff"] = f"{diff:.3g}"
    data = _with_metadata(data, metadata)
    path = Path(path)
    atomic_write_bytes(path, data)
    shapes = tuple(tuple(inputs[0].shape) for inputs in (example, probe)) if check else ()
    return OnnxExport(path, what, input_names, output_name, diff, shapes, metadata)


def _require(package: str) -> None:
    import importlib.util

    if importlib.util.find_spec(package) is None:
        raise ImportError(f"ONNX export needs the package {package!r}: pip install 'gicho[onnx]' "
                          "(onnx and onnxruntime)")


def _check_export(model: nn.Module, what: str | None) -> str:
    """The graph to export for ``model``, or ``ValueError`` saying what is supported."""
    if what is not None and what not in EXPORT_KINDS:
        raise ValueError(f"argument `what` must be one of {EXPORT_KINDS}; got {what!r}")
    name = type(model).__name__
    if isinstance(model, BertPreTrainedModel):
        has_head = isinstance(model, BertForSequenceClassification)
        if what == "classifier" and not has_head:
            raise ValueError(f"argument `what`='classifier' needs a classification head, and this {name} has "
                             "none; export its sentence embeddings with what='embeddings'")
        what = what or ("classifier" if has_head else "embeddings")
    elif isinstance(model, ViTPretrained):
        if not isinstance(model, ViTForImageClassification):
            raise ValueError(f"ONNX export supports {SUPPORTED}; got a {name} (an encoder without a head)")
        if what == "embeddings":
            raise ValueError("argument `what`='embeddings' is for BERT models (sentence embeddings); "
                             f"a {name} exports what='classifier'")
        what = "classifier"
    else:
        raise ValueError(f"ONNX export supports {SUPPORTED}; got a {name}")
    dtypes = {p.dtype for p in model.parameters()}
    if dtypes != {torch.float32}:
        raise ValueError(f"ONNX export writes float32 graphs; this {name} has parameters of "
                         f"{sorted(map(str, dtypes))} (call model.float() first)")
    return what


def _text_inputs(model: BertPreTrainedModel, shape: tuple[int, int], seed: int) -> tuple[Tensor, ...]:
    """Token ids, a padded attention mask and two segments, (B, T) int64 each: row 0 is whole,
    the others end in padding (the graph must not depend on where padding is)."""
    c = model.config
    batch, length = shape[0], min(shape[1], c.max_len)
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, c.vocab_size, (batch, length), generator=g)
    lengths = torch.tensor([length] + [max(1, length - 1 - i) for i in range(batch - 1)])
    mask = (torch.arange(length) < lengths[:, None]).long()  # (B, T)
    if c.pad_token_id is not None:
        ids = ids.masked_fill(mask == 0, c.pad_token_id)
    segments = (torch.arange(length) >= length // 2).long().expand(batch, -1) if c.n_segments > 1 \
        else torch.zeros(batch, length, dtype=torch.long)
    return tuple(t.contiguous().to(device) for t in (ids, mask, segments * mask))


def _image_inputs(model: ViTPretrained, batch: int, seed: int) -> tuple[Tensor]:
    c = model.config
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randn(batch, c.in_channels, c.image_size, c.image_size, generator=g)
    return (pixels.to(next(model.parameters()).device),)


def _trace(graph: _Graph, example: tuple[Tensor, ...], input_names: tuple[str, ...], output_name: str,
           text: bool, opset: int) -> bytes:
    """The ONNX file's bytes, traced on ``example`` with dynamic batch (and sequence) axes."""
    import inspect

    axes = {0: "batch", 1: "sequence"} if text else {0: "batch"}
    dynamic = {name: axes for name in input_names} | {output_name: {0: "batch"}}
    # torch >= 2.9 defaults to the dynamo exporter; older ones have only the TorchScript one
    kind = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # the tracer warns of every shape check it records as a constant, and of its deprecation;
        # the comparison with onnxruntime at other shapes is the real check
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, example, buffer, input_names=list(input_names), output_names=[output_name],
                          dynamic_axes=dynamic, opset_version=opset, do_constant_folding=True, **kind)
    return buffer.getvalue()


def _max_abs_diff(data: bytes, input_names: tuple[str, ...], inputs: tuple[tuple[Tensor, ...], ...],
                  expected: list[Any]) -> float:
    """Largest ``|onnxruntime - gicho|`` over the inputs (NaN where the shapes differ)."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # fatal only: a failure is re-raised below with its message
    try:
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own types: an operator it does not implement
        raise ValueError(f"onnxruntime cannot load the exported graph ({_one_line(exc)})") from None
    worst = 0.0
    for tensors, want in zip(inputs, expected, strict=True):
        try:
            (got,) = session.run(None, {n: t.cpu().numpy() for n, t in zip(input_names, tensors, strict=True)})
        except Exception as exc:  # onnxruntime's own types: a graph that holds for the example only
            raise ValueError(f"onnxruntime cannot run the exported graph on inputs of shape "
                             f"{tuple(tensors[0].shape)} ({_one_line(exc)})") from None
        if got.shape != want.shape:
            return float("nan")
        worst = max(worst, float(np.max(np.abs(got.astype(np.float64) - want))))
    return worst


def _one_line(exc: BaseException) -> str:
    """onnxruntime's message on one line (it spans several)."""
    return " ".join(str(exc).split())


def _metadata(model: nn.Module, what: str, input_names: tuple[str, ...], output_name: str,
              source: Path | None) -> dict[str, str]:
    c = model.config
    out = {"gicho.what": what, "gicho.model_type": type(model).model_type,
           "gicho.architecture": type(model).__name__,
           "gicho.inputs": json.dumps(list(input_names)), "gicho.outputs": json.dumps([output_name]),
           "gicho.label_names": json.dumps(list(c.label_names) if what == "classifier" and c.label_names
                                           else None)}
    if isinstance(model, BertPreTrainedModel):
        out["gicho.max_len"] = str(c.max_len)
        files = [f for f in TOKENIZER_FILES if source is not None and (source / f).is_file()]
        out["gicho.preprocessing"] = (f"the tokenizer of the model directory {source} ({', '.join(files)})" if files
                                      else "the tokenizer the model was trained with (BERT WordPiece ids)")
    else:
        out["gicho.image_size"] = str(c.image_size)
        out["gicho.preprocessing"] = ("pixel values from the model's image processor "
                                      "(preprocessor_config.json of its directory)")
    return out


def _with_metadata(data: bytes, metadata: dict[str, str]) -> bytes:
    import onnx

    proto = onnx.load_from_string(data)
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()
