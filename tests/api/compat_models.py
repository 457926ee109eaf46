"""Chat models for the OpenAI / Anthropic layer tests: SmolLM2 re-templated (``/api/create`` with a Go
TEMPLATE, as Ollama's library packages models) so it has the tools and thinking capabilities its own
GGUF template lacks. The weights are SmolLM2's, so the runner is shared with ``smollm2:135m``.

``TOOLS`` is Ollama's ChatML-with-tools template (qwen2.5 style): tools in the system prompt, calls as
``<tool_call>{"name", "arguments"}</tool_call>``, results as ``<tool_response>``. ``THINK`` adds a
``<think>`` block that the generation prompt opens when thinking is on (a prefilled tag), so SmolLM2's
output is routed to the thinking channel.
"""
from __future__ import annotations

from typing import Any

TOOLS_MODEL = "smol-tools"
THINK_MODEL = "smol-think"

TOOLS_TEMPLATE = """{{- if or .System .Tools }}<|im_start|>system
{{- if .System }}
{{ .System }}
{{- end }}
{{- if .Tools }}

# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{{- range .Tools }}
{"type": "function", "function": {{ .Function }}}
{{- end }}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call>
{{- end }}<|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ if .Content }}{{ .Content }}
{{- else if .ToolCalls }}<tool_call>
{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
{{ end }}</tool_call>
{{- end }}{{ if not $last }}<|im_end|>
{{ end }}
{{- else if eq .Role "tool" }}<|im_start|>user
<tool_response>
{{ .Content }}
</tool_response><|im_end|>
{{ end }}
{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant
{{ end }}
{{- end }}"""

THINK_TEMPLATE = """{{- range .Messages }}<|im_start|>{{ .Role }}
{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ if .Think }}<think>{{ end }}"""

WEATHER = {"type": "object", "properties": {"city": {"type": "string", "description": "the city name",
                                                      "maxLength": 40}},
           "required": ["city"]}
ADD = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}


def create_models(server: Any) -> None:
    for name, template in ((TOOLS_MODEL, TOOLS_TEMPLATE), (THINK_MODEL, THINK_TEMPLATE)):
        r = server.post("/api/create", json={"model": name, "from": "smollm2:135m", "template": template,
                                             "stream": False})
        assert r.status_code == 200, r.text
