"""Model capabilities that follow from its template, derived the way Ollama derives them.

  tools     the Go template mentions `.Tools` (or a Jinja template mentions tools / tool_call)
  insert    the Go template mentions `.Suffix`
  thinking  `.Thinking` sits inside `range .Messages` with literal tags around it
            (or a Jinja template contains both `<think>` and `</think>`)
`completion`/`embedding` and `vision` come from the GGUF and the projector, which the store knows;
`model_capabilities` combines everything in Ollama's order.
"""
from __future__ import annotations

from pyollama.templates.gotemplate import parse_cached
from pyollama.templates.thinking import infer_tags




def template_capabilities(template: str) -> set[str]:
    """Capabilities a Go template gives: a subset of {"tools", "insert", "thinking"}.
    Raises TemplateParseError for a template that does not parse."""
    t = parse_cached(template)
    names = t.vars()
    caps = set()
    if "tools" in names:
        caps.add("tools")
    if "suffix" in names:
        caps.add("insert")
    opening, closing = infer_tags(t)
    if opening and closing:
        caps.add("thinking")
    return caps


def jinja_capabilities(source: str) -> set[str]:
    """Capabilities a GGUF Jinja chat template gives (Ollama's heuristics for native mode)."""
    caps = set()
    if "tools" in source or "tool_call" in source:
        caps.add("tools")
    if "<think>" in source and "</think>" in source:
        caps.add("thinking")
    return caps


def model_capabilities(template: str | None, *, jinja_template: str | None = None, embedding: bool = False,
                       gguf_vision: bool = False, projector: bool = False, rerank: bool = False) -> list[str]:
    """The `capabilities` list of /api/show in Ollama's order: completion or embedding (or rerank, for a
    reranker: pyollama's, Ollama has none), vision
    when the GGUF has a vision tower, then what the template gives (tools, insert), vision from a
    projector, thinking. `template` is the Go TEMPLATE (None: the model has none)."""
    caps = ["rerank" if rerank else "embedding" if embedding else "completion"]
    if gguf_vision:
        caps.append("vision")
    if template is not None:
        found = template_capabilities(template)
    elif jinja_template is not None:
        found = jinja_capabilities(jinja_template)
    else:
        found = set()
    caps += [c for c in ("tools", "insert") if c in found]
    if projector and "vision" not in caps:
        caps.append("vision")
    if "thinking" in found:
        caps.append("thinking")
    return caps
