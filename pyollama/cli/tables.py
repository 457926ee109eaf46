"""What ``list``, ``ps`` and ``show`` print: Ollama's borderless, left-aligned tables, drawn by rich.

Cells are rich ``Text`` objects, never markup strings, so a model named ``x[bold]`` prints as itself.
Columns are as wide as their widest cell, whatever the terminal's width (nothing is cut short), and
trailing padding is trimmed.

Thread-safety: pure functions over response dicts, writing to the given stream.
"""
from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterable, Sequence
from typing import IO, Any

from pyollama.cli.fmt import human_bytes, human_number, human_time, parse_time, processor


def console(stream: IO[str] | None = None) -> Any:
    """A console as wide as any table: rich would otherwise squeeze columns to the terminal and cut
    names short. A line longer than the terminal wraps there, as Ollama's tables do."""
    from rich.console import Console

    return Console(file=stream or sys.stdout, highlight=False, soft_wrap=False, width=10_000,
                   color_system=None)


def print_table(header: Sequence[str], rows: Iterable[Sequence[str]], stream: IO[str] | None = None) -> None:
    from rich.table import Table
    from rich.text import Text

    t = Table(box=None, show_edge=False, pad_edge=False, padding=(0, 4, 0, 0),
              header_style="", show_header=True)
    for h in header:
        t.add_column(Text(h), no_wrap=True, overflow="ignore")
    for row in rows:
        t.add_row(*(Text(str(c)) for c in row))
    _print_trimmed(t, stream)


def _print_trimmed(renderable: Any, stream: IO[str] | None) -> None:
    """Print without the trailing spaces rich pads cells with (they only get in the way of pipes)."""
    con = console(stream)
    with con.capture() as cap:
        con.print(renderable)
    out = stream or sys.stdout
    out.write("\n".join(line.rstrip() for line in cap.get().split("\n")))
    out.flush()


def short_id(digest: str) -> str:
    return (digest or "").removeprefix("sha256:")[:12]


def list_rows(models: list[dict[str, Any]], prefix: str = "", now: dt.datetime | None = None) -> list[list[str]]:
    rows = []
    for m in models:
        name = m.get("name") or m.get("model") or ""
        if prefix and not name.startswith(prefix):
            continue
        rows.append([name, short_id(m.get("digest", "")), human_bytes(m.get("size") or 0),
                     human_time(parse_time(m.get("modified_at")), "Never", now)])
    return rows


def ps_rows(models: list[dict[str, Any]], prefix: str = "", now: dt.datetime | None = None) -> list[list[str]]:
    now = now or dt.datetime.now(dt.timezone.utc)
    rows = []
    for m in models:
        name = m.get("name") or m.get("model") or ""
        if prefix and not name.startswith(prefix):
            continue
        expires = parse_time(m.get("expires_at"))
        until = "Stopping..." if expires is not None and expires < now else human_time(expires, "Never", now)
        size = int(m.get("size") or 0)
        rows.append([name, short_id(m.get("digest", "")), human_bytes(size),
                     processor(size, int(m.get("size_vram") or 0), m.get("devices")), str(m.get("context_length") or ""), until])
    return rows


# --- show ----------------------------------------------------------------------------------------
def _first_lines(text: str, n: int = 2) -> list[str]:
    return [x.strip() for x in text.splitlines() if x.strip()][:n]


def _param_rows(parameters: str) -> list[list[str]]:
    rows = []
    for line in parameters.splitlines():
        key, _, value = line.strip().partition(" ")
        if key:
            rows.append([key, value.strip()])
    return rows


def _fmt_value(v: Any, max_items: int = 8) -> str:
    """A metadata value on one line; long arrays (vocabularies, merges) show their first items."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, list):
        head = ", ".join(_fmt_value(x) for x in v[:max_items])
        more = f", ... (+{len(v) - max_items} more)" if len(v) > max_items else ""
        return "[" + head + more + "]"
    return str(v)


def show_sections(resp: dict[str, Any], verbose: bool = False) -> list[tuple[str, list[list[str]]]]:
    """The sections of ``ollama show``: Model, Projector, Capabilities, Parameters, System, License, and
    with ``verbose`` Metadata and Tensors."""
    info = resp.get("model_info") or {}
    details = resp.get("details") or {}
    arch = str(info.get("general.architecture") or details.get("family") or "")
    model = [["architecture", arch]]
    params = info.get("general.parameter_count")
    model.append(["parameters", human_number(params) if isinstance(params, (int, float))
                  else str(details.get("parameter_size") or "")])
    for key, label in (("context_length", "context length"), ("embedding_length", "embedding length")):
        v = info.get(f"{arch}.{key}")
        if v is not None:
            model.append([label, _fmt_value(v)])
    if details.get("quantization_level"):
        model.append(["quantization", str(details["quantization_level"])])
    sections: list[tuple[str, list[list[str]]]] = [("Model", model)]
    proj = resp.get("projector_info") or {}
    if proj:
        rows = [["architecture", str(proj.get("general.architecture") or "clip")]]
        if isinstance(proj.get("general.parameter_count"), (int, float)):
            rows.append(["parameters", human_number(proj["general.parameter_count"])])
        sections.append(("Projector", rows))
    if resp.get("capabilities"):
        sections.append(("Capabilities", [[c] for c in resp["capabilities"]]))
    if resp.get("parameters"):
        sections.append(("Parameters", _param_rows(resp["parameters"])))
    if resp.get("system"):
        sections.append(("System", [[x] for x in _first_lines(resp["system"])]))
    if resp.get("license"):
        sections.append(("License", [[x] for x in _first_lines(resp["license"])]))
    if verbose:
        sections.append(("Metadata", [[k, _fmt_value(v)] for k, v in sorted(info.items())]))
        tensors = resp.get("tensors") or []
        if tensors:
            sections.append(("Tensors", [[t.get("name", ""), t.get("type", ""), _fmt_value(t.get("shape", []))]
                                         for t in tensors]))
    return sections


def print_show(resp: dict[str, Any], verbose: bool = False, stream: IO[str] | None = None) -> None:
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    for title, rows in show_sections(resp, verbose):
        _print_trimmed(Padding(Text(title), (0, 0, 0, 2)), stream)
        grid = Table.grid(padding=(0, 4, 0, 0))
        width = max((len(r) for r in rows), default=1)
        for i in range(width):
            # Every column but the last as wide as its widest cell: a long value must not squeeze the keys.
            widest = max((len(r[i]) for r in rows if len(r) > i), default=0)
            grid.add_column(no_wrap=True, overflow="ignore", min_width=widest if i < width - 1 else None)
        for r in rows:
            grid.add_row(*(Text(c) for c in r), *([Text("")] * (width - len(r))))
        _print_trimmed(Padding(grid, (0, 0, 0, 4)), stream)
        (stream or sys.stdout).write("\n")
