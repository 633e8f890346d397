"""`gicho fill-mask` and `gicho embed`: a BERT checkpoint on the user's text."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from gicho.cli._app import _console, app


def _load_bert(checkpoint: Path, *, masked_lm: bool):  # -> (model, tokenizer)
    from gicho.models import from_pretrained
    from gicho.models.bert import BertForMaskedLM, BertPreTrainedModel
    from gicho.tasks.bert_text import load_tokenizer
    from gicho.weights import read_config, tensor_shapes, weights_file

    if not checkpoint.is_dir():
        raise FileNotFoundError(f"checkpoint {checkpoint} is not a directory (expected an HF BERT "
                                "directory: config.json, model.safetensors, tokenizer.json or vocab.txt)")
    if read_config(checkpoint).get("model_type") != "bert":
        raise ValueError(f"checkpoint {checkpoint} is not a BERT (config.json's model_type is "
                         f"{read_config(checkpoint).get('model_type')!r}; allowed: 'bert')")
    tokenizer = load_tokenizer(checkpoint)
    if masked_lm:
        names = tensor_shapes(weights_file(checkpoint))
        if not any(n.startswith(("cls.predictions.", "lm_head.")) for n in names):
            architecture = (read_config(checkpoint).get("architectures") or ["BertModel"])[0]
            raise ValueError(f"checkpoint {checkpoint} ({architecture}) has no masked-language-model "
                             "head (no cls.predictions.* tensors), so it cannot fill masks; use a "
                             "BertForMaskedLM checkpoint (`gicho embed` works with this one)")
        return BertForMaskedLM.from_pretrained(checkpoint), tokenizer
    model = from_pretrained(checkpoint)
    if not isinstance(model, BertPreTrainedModel):  # pragma: no cover - model_type checked above
        raise ValueError(f"checkpoint {checkpoint} is not a BERT model")
    return model, tokenizer


def _warn_truncated(truncated: list[bool], max_len: int) -> None:
    for i, cut in enumerate(truncated):
        if cut:
            typer.echo(f"warning: text {i + 1} is longer than max_len={max_len} tokens; truncated",
                       err=True)


@app.command("fill-mask")
def fill_mask_command(
    checkpoint: Annotated[Path, typer.Argument(help="A BERT directory with an MLM head and a tokenizer.")],
    text: Annotated[str, typer.Argument(help='Text with one or more [MASK] tokens, e.g. "The [MASK] statement exits a loop."')],
    top_k: Annotated[int, typer.Option("--top-k", help="Tokens shown per [MASK].")] = 5,
) -> None:
    """Predict the tokens hidden behind [MASK] with a BERT masked-language model."""
    from rich.table import Table

    from gicho.tasks.bert_text import encode, fill_mask

    model, tokenizer = _load_bert(checkpoint, masked_lm=True)
    _warn_truncated(encode(tokenizer, [text], model.config.max_len).truncated, model.config.max_len)
    for m, candidates in enumerate(fill_mask(model, tokenizer, text, top_k)):
        table = Table(title=f"[MASK] {m + 1}: {text}")
        for column in ("rank", "token", "probability"):
            table.add_column(column, justify="right" if column != "token" else "left")
        for rank, (token, p) in enumerate(candidates, 1):
            table.add_row(str(rank), token, f"{p:.4f}")
        _console().print(table)


@app.command("embed")
def embed_command(
    checkpoint: Annotated[Path, typer.Argument(help="A BERT directory with a tokenizer (e.g. all-MiniLM-L6-v2).")],
    texts: Annotated[list[str], typer.Argument(help="One or more texts.")],
    out: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--out", help="Save the embeddings (N, D) float32 to this .npy file instead of printing them."),
    ] = None,
) -> None:
    """Normalised mean-pooled sentence embeddings and, for several texts, their cosine similarities."""
    import numpy as np
    from rich.table import Table

    from gicho.tasks.bert_text import sentence_embeddings

    model, tokenizer = _load_bert(checkpoint, masked_lm=False)
    embeddings, truncated = sentence_embeddings(model, tokenizer, list(texts))
    _warn_truncated(truncated, model.config.max_len)
    array = embeddings.numpy().astype(np.float32)
    if out is not None:
        with open(out, "wb") as fh:  # exactly this name (np.save(path) would append .npy)
            np.save(fh, array)
        typer.echo(f"wrote {out}: {array.shape[0]} x {array.shape[1]} float32, L2-normalised")
    else:
        for i, row in enumerate(array):
            typer.echo(f"{i + 1}\t" + " ".join(f"{v:.6f}" for v in row))
    if len(array) > 1:
        table = Table(title="cosine similarity")
        table.add_column("")
        for j in range(len(array)):
            table.add_column(str(j + 1), justify="right")
        similarity = array @ array.T  # (N, N): the rows are unit vectors
        for i, text in enumerate(texts):
            label = text if len(text) <= 40 else text[:37] + "..."
            table.add_row(f"{i + 1} {label}", *(f"{v:.3f}" for v in similarity[i]))
        _console().print(table)
