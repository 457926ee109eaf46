"""Prompt templates: Go text/template (Ollama's TEMPLATE), GGUF Jinja chat templates, Ollama's
rendering model, capabilities, and streaming parsers for thinking and tool calls.

Rendering (any thread):
    render_chat(template, messages, tools=None, think=None) -> str        /api/chat
    render_generate(template, prompt, system="", suffix="", messages=None, think=None) -> str
    render_template(text, values) -> str      plain Go semantics for power users checking a TEMPLATE
    JinjaTemplate(source, bos_token=..., eos_token=...).render(messages, tools, add_generation_prompt)
    render_jinja_chat(source, messages, tools=None, bos_token=..., eos_token=...) -> str (cached compile)
Capabilities:
    template_capabilities(template) -> {"tools", "insert", "thinking"} subset; model_capabilities(...)
Streaming parsers (one per request):
    ThinkingParser.for_prompt(template, prompt).feed(piece) / .finish() -> (thinking, content)
    ToolCallParser.for_template(template, tools).feed(piece) / .finish() -> ToolParseResult
Errors are pyollama.errors.TemplateError (TemplateParseError / TemplateExecError) with line and col.
"""
from __future__ import annotations

from pyollama.templates.capabilities import jinja_capabilities, model_capabilities, template_capabilities
from pyollama.templates.gotemplate import GoTemplate, parse_cached
from pyollama.templates.jinja import JinjaTemplate, read_gguf_chat_template, render_jinja_chat
from pyollama.templates.render import (
    DEFAULT_TEMPLATE, render_chat, render_generate, render_template, think_values,
)
from pyollama.templates.thinking import ThinkingParser, ThinkingResult, infer_tags
from pyollama.templates.toolcalls import (
    ToolCall, ToolCallParser, ToolParseResult, infer_tool_tag, new_call_id,
)

__all__ = [
    "DEFAULT_TEMPLATE", "GoTemplate", "JinjaTemplate", "ThinkingParser", "ThinkingResult", "ToolCall",
    "ToolCallParser", "ToolParseResult", "infer_tags", "infer_tool_tag", "jinja_capabilities",
    "model_capabilities", "new_call_id", "parse_cached", "read_gguf_chat_template", "render_chat", "render_jinja_chat",
    "render_generate", "render_template", "template_capabilities", "think_values",
]
