"""Self-contained HTML reports: one per run, and an index for the tour.

A run report holds the task (T, E, P), the config, the final metrics and every PNG figure of
the run's ``plots/`` directory embedded as base64, so the page can be mailed or archived on
its own. Every value is HTML-escaped: configs may hold user-supplied paths and strings.
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from gicho import __version__
from gicho._io import atomic_write_text, read_json
from gicho.rundir import RunDir

__all__ = ["format_metric", "write_run_report", "write_tour_report"]

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#1b1b1b}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0} td,th{border:1px solid #ddd;padding:.3em .7em;text-align:left}
th{background:#f4f4f4} td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1em 0} figure img{max-width:100%;border:1px solid #eee}
figcaption{color:#555;font-size:.9em} .muted{color:#777} .error{color:#b00020}
"""


def format_metric(value: Any) -> str:
    """Scores with four decimals (scientific below 1e-3), counts (``int``) as they are."""
    if isinstance(value, float):
        return f"{value:.4f}" if value == 0 or abs(value) >= 1e-3 else f"{value:.3e}"
    return str(value)


def _table(rows: Iterable[tuple[Any, Any]], header: tuple[str, str] | None = None) -> str:
    parts = ["<table>"]
    if header:
        parts.append(f"<tr><th>{html.escape(header[0])}</th><th>{html.escape(header[1])}</th></tr>")
    for key, value in rows:
        cls = ' class="num"' if isinstance(value, (int, float)) else ""
        parts.append(f"<tr><td>{html.escape(str(key))}</td><td{cls}>{html.escape(format_metric(value))}</td></tr>")
    parts.append("</table>")
    return "\n".join(parts)


def _embedded_figures(plots_dir: Path) -> str:
    figures = []
    for png in sorted(plots_dir.glob("*.png")) if plots_dir.is_dir() else []:
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        caption = html.escape(png.stem.replace("_", " "))
        figures.append(
            f'<figure><img alt="{caption}" src="data:image/png;base64,{data}">'
            f"<figcaption>{caption}</figcaption></figure>"
        )
    return "\n".join(figures) or '<p class="muted">no figures</p>'


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>{body}"
        f'<p class="muted">written by gicho {html.escape(__version__)}</p></body></html>\n'
    )


def write_run_report(run_dir: Path | str) -> Path:
    """(Re)draw the learning curves and write ``report.html`` for a run; return its path."""
    from gicho.plots import learning_curves
    from gicho.tasks import config_from_dict, get

    run_dir = Path(run_dir)
    files = RunDir(run_dir)
    run_config = files.read_config()
    if not isinstance(run_config, dict):
        raise ValueError(f"run config {files.config} must hold a JSON object; got {type(run_config).__name__}")
    results_path = files.results
    results = read_json(results_path, "run results") if results_path.is_file() else {}
    _check_results(results, results_path)
    learning_curves(run_dir)

    task_name = str(run_config.get("task", "?"))
    unused: dict[str, str] = {}
    try:
        task = get(task_name)
    except KeyError:
        tep = [("task", f"{task_name} (not registered in this installation)")]
    else:
        try:  # T and E of the config this run was made with, not of the task's defaults
            config = config_from_dict(task.config_cls, run_config.get("config", {}))
        except (TypeError, ValueError):
            config = None
        model, data, metric_names = task.tep(config)
        tep = [("T (model)", model), ("E (data)", data), ("P (metrics)", metric_names)]
        if config is not None:
            try:  # the marks are a courtesy: a corpus directory gone unreadable must not stop the report
                unused = task.unused_fields(config)
            except OSError:
                unused = {}
    metrics: Mapping[str, Any] = results.get("metrics", {})
    body = [
        f"<h1>gicho run: {html.escape(task_name)}</h1>",
        f'<p class="muted">{html.escape(str(run_dir.resolve()))}</p>',
        "<h2>Task</h2>", _table(tep),
        "<h2>Final held-out metrics</h2>",
        _table(metrics.items(), ("metric", "value")) if metrics else '<p class="muted">the run has not finished</p>',
    ]
    if "seconds" in results:
        body.append(f"<p>wall time: {results['seconds']:.1f} s</p>")
    body += ["<h2>Figures</h2>", _embedded_figures(files.plots)]
    config = run_config.get("config", {})
    rows = ((k, json.dumps(v) + (f" (not used: {unused[k]})" if k in unused else "")) for k, v in _flatten(config))
    body += ["<h2>Config</h2>", _table(rows, ("field", "value"))]
    path = files.report
    atomic_write_text(path, _page(f"gicho {task_name}", "\n".join(body)))
    return path


def _check_results(results: Any, path: Path) -> None:
    """``results.json`` holds an object with a mapping of numbers under ``metrics``."""
    if not isinstance(results, dict):
        raise ValueError(f"run results {path} must hold a JSON object; got {type(results).__name__}")
    metrics = results.get("metrics", {})
    if not isinstance(metrics, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in metrics.values()):
        raise ValueError(f"run results {path}: 'metrics' must map names to numbers; got {metrics!r:.80}")
    seconds = results.get("seconds", 0.0)
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        raise ValueError(f"run results {path}: 'seconds' must be a number; got {seconds!r:.40}")


def _flatten(config: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested config parts as dotted rows (``train.lr``), as the CLI spells them."""
    if not isinstance(config, Mapping):
        return [(prefix.rstrip(".") or "config", config)]
    rows: list[tuple[str, Any]] = []
    for key, value in config.items():
        if isinstance(value, Mapping):
            rows += _flatten(value, f"{prefix}{key}.")
        else:
            rows.append((f"{prefix}{key}", value))
    return rows


def write_tour_report(rows: Iterable[Any], path: Path | str) -> Path:
    """Write the tour index: one line per task with T, E, P, value and a link to its report."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["<table><tr><th>task</th><th>T</th><th>E</th><th>metric</th><th>value</th><th>time</th><th>report</th></tr>"]
    for row in rows:
        task = row.task
        link = '<span class="muted">-</span>'
        if row.run_dir is not None and RunDir(row.run_dir).report.is_file():
            rel = os.path.relpath(RunDir(row.run_dir).report, path.parent)
            link = f'<a href="{html.escape(rel)}">report</a>'
        if row.error:
            values = [(task.metrics[0], None)]
        else:
            values = list(row.metrics.items()) or [(task.metrics[0], None)]
        model, data, _ = row.tep()  # of the config that ran
        for i, (metric, value) in enumerate(values):
            first = i == 0
            shown = f'<span class="error">{html.escape(row.error)}</span>' if row.error else html.escape(format_metric(value))
            lines.append(
                "<tr>"
                + (f'<td rowspan="{len(values)}">{html.escape(task.name)}</td>'
                   f'<td rowspan="{len(values)}">{html.escape(model)}</td>'
                   f'<td rowspan="{len(values)}">{html.escape(data)}</td>' if first else "")
                + f'<td>{html.escape(metric)}</td><td class="num">{shown}</td>'
                + (f'<td rowspan="{len(values)}" class="num">{row.seconds:.1f} s</td>'
                   f'<td rowspan="{len(values)}">{link}</td>' if first else "")
                + "</tr>"
            )
    lines.append("</table>")
    body = "<h1>gicho tour</h1><p>Every registered task, trained on its embedded data with a small budget.</p>"
    atomic_write_text(path, _page("gicho tour", body + "\n".join(lines)))
    return path
