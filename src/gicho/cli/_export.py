"""`gicho export`: a trained BERT or ViT as an ONNX graph, checked against gicho before it is written."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from gicho.cli._app import USAGE_ERROR, app


@app.command("export")
def export_command(
    model_dir: Annotated[Path, typer.Argument(
        help="A run directory (its model/ is exported) or a model directory (config.json + "
             "model.safetensors) of a BERT or ViT.")],
    onnx: Annotated[Path, typer.Option(
        "--onnx", help="The .onnx file to write (written whole, then renamed: a failed export leaves "
                       "nothing, and an existing file is replaced only by a checked one).")],
    what: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--what", help="classifier (logits) or embeddings (a BERT's normalised mean-pooled "
                                    "sentence embeddings). Default: classifier for a model with a "
                                    "classification head, embeddings for a BERT without one."),
    ] = None,
) -> None:
    """Export a BERT or ViT classifier, or a BERT's sentence embeddings, to ONNX (dynamic batch axis;
    dynamic sequence axis for text). onnxruntime runs the graph on two batches of other sizes and
    padding than each other and it is written only if it matches gicho to 1e-4."""
    from gicho.models.onnx_export import TOLERANCE, export_onnx

    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir} is not a directory (expected a run directory or a model "
                                "directory with config.json and model.safetensors)")
    try:
        result = export_onnx(model_dir, onnx, what=what)
    except ImportError as exc:  # the optional extra is missing
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(USAGE_ERROR) from None
    text = "input_ids" in result.input_names
    axes = "batch and sequence" if text else "batch"
    shapes = " and ".join(" x ".join(map(str, shape)) for shape in result.checked_shapes)
    typer.echo(f"wrote {result.path}: {result.metadata['gicho.architecture']} → {result.output_name} "
               f"(inputs {', '.join(result.input_names)}; dynamic {axes})")
    typer.echo(f"checked with onnxruntime: max |onnxruntime - gicho| = {result.max_abs_diff:.2e} "
               f"<= {TOLERANCE:g} on inputs of shape {shapes}{' (padded)' if text else ''}")
