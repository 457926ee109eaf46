"""Ollama's api types as templates see them: api.Message, api.ToolCall, api.Tool and friends.

Field names, JSON tags and String() methods follow Ollama's Go types, because templates print
them: `{{ .Function.Arguments }}` and `{{ .Tools }}` come out as JSON (Go's encoding, HTML-safe,
no spaces), `{{ json .Function.Parameters }}` drops unknown keys the way Go's decoder does.
Built from API-shaped dicts by `message_from_api` / `tools_from_api`.
"""
from __future__ import annotations

from typing import Any, ClassVar

from pyollama.golang.json import marshal
from pyollama.golang.values import GoSlice, GoStruct, OrderedMap


def _json_or_empty(v: Any) -> str:
    try:
        return marshal(v)
    except ValueError:
        return ""


class _TemplateMap(OrderedMap):
    """A Go map with a String() method that prints its JSON: ranged and marshalled in sorted key
    order, whatever order the client sent (Ollama converts these to plain maps for templates)."""

    __slots__ = ()

    def go_json(self) -> Any:
        return dict(self)

    def go_string(self) -> str:
        return _json_or_empty(self)


class Arguments(_TemplateMap):
    """A tool call's arguments as templates see them (Ollama's ``templateArgs``)."""

    __slots__ = ()
    go_type = "template.templateArgs"


class ToolProperties(_TemplateMap):
    """A tool's top-level properties as templates see them (Ollama's ``templateProperties``)."""

    __slots__ = ()
    go_type = "template.templateProperties"


class PropertiesMap(OrderedMap):
    """A nested property's ``properties`` (``*api.ToolPropertiesMap``): marshals in the order the
    client sent. A pointer in Go, so ``omitempty`` drops it only when absent, not when empty."""

    __slots__ = ()
    go_type = "*api.ToolPropertiesMap"
    go_pointer = True


class PropertyType(GoSlice):
    """api.PropertyType: one JSON type or several; marshals as a string when there is one."""

    __slots__ = ()
    go_type = "api.PropertyType"

    def go_string(self) -> str:
        if not self:
            return ""
        if len(self) == 1:
            return str(self[0])
        return "[" + " ".join(str(t) for t in self) + "]"

    def go_json(self) -> Any:
        return self[0] if len(self) == 1 else list(self)


class ToolList(GoSlice):
    """api.Tools; prints as its JSON (`null` when no tools were given, like Go's nil slice)."""

    __slots__ = ()
    go_type = "api.Tools"

    def go_string(self) -> str:
        return _json_or_empty(self)

    def go_json(self) -> Any:
        return None if not self else list(self)


class _Jsonable(GoStruct):
    """A Go type whose String() method prints its JSON (the tool types)."""
    __slots__ = ()
    _go_methods = ("String",)

    def go_string(self) -> str | None:
        return _json_or_empty(self)

    def String(self) -> str:  # noqa: N802 - Go method name, callable from templates
        return self.go_string() or ""


class ToolProperty(GoStruct):
    __slots__ = ("AnyOf", "Type", "Items", "Description", "Enum", "Properties", "Required")
    _go_type = "api.ToolProperty"
    _json_fields = (("AnyOf", "anyOf", True), ("Type", "type", True), ("Items", "items", True),
                    ("Description", "description", True), ("Enum", "enum", True),
                    ("Properties", "properties", True), ("Required", "required", True))

    def __init__(self, AnyOf: list[ToolProperty] | None = None, Type: PropertyType | None = None,
                 Items: Any = None, Description: str = "", Enum: list[Any] | None = None,
                 Properties: PropertiesMap | None = None, Required: list[str] | None = None):
        self.AnyOf = AnyOf or []
        self.Type = Type if Type is not None else PropertyType()
        self.Items = Items
        self.Description = Description
        self.Enum = Enum or []
        self.Properties = Properties          # None: absent (a nil pointer in Go)
        self.Required = Required or []

    def to_typescript(self) -> str:
        """api.ToolProperty.ToTypeScriptType: `string`, `number | null`, `any[]`, ..."""
        if self.AnyOf:
            return " | ".join(p.to_typescript() for p in self.AnyOf)
        if not self.Type:
            return "any"
        return " | ".join(_TS_TYPES.get(t, "any") for t in self.Type)


_TS_TYPES = {"string": "string", "number": "number", "integer": "number", "boolean": "boolean",
             "array": "any[]", "object": "Record<string, any>", "null": "null"}


class ToolFunctionParameters(_Jsonable):
    __slots__ = ("Type", "Defs", "Items", "Required", "Properties")
    _go_type = "api.ToolFunctionParameters"
    _json_fields = (("Type", "type", False), ("Defs", "$defs", True), ("Items", "items", True),
                    ("Required", "required", True), ("Properties", "properties", False))

    def __init__(self, Type: str = "", Defs: Any = None, Items: Any = None,
                 Required: list[str] | None = None, Properties: ToolProperties | None = None):
        self.Type = Type
        self.Defs = Defs
        self.Items = Items
        self.Required = Required or []
        self.Properties = Properties if Properties is not None else ToolProperties()


class ToolFunction(_Jsonable):
    __slots__ = ("Name", "Description", "Parameters")
    _go_type = "api.ToolFunction"
    _json_fields = (("Name", "name", False), ("Description", "description", True),
                    ("Parameters", "parameters", False))

    def __init__(self, Name: str = "", Description: str = "",
                 Parameters: ToolFunctionParameters | None = None):
        self.Name = Name
        self.Description = Description
        self.Parameters = Parameters or ToolFunctionParameters()


class Tool(_Jsonable):
    __slots__ = ("Type", "Items", "Function")
    _go_type = "api.Tool"
    _json_fields = (("Type", "type", False), ("Items", "items", True), ("Function", "function", False))

    def __init__(self, Type: str = "", Items: Any = None, Function: ToolFunction | None = None):
        self.Type = Type
        self.Items = Items
        self.Function = Function or ToolFunction()


class ToolCallFunction(GoStruct):
    __slots__ = ("Index", "Name", "Arguments")
    _go_type = "api.ToolCallFunction"
    _json_fields = (("Index", "index", False), ("Name", "name", False), ("Arguments", "arguments", False))

    def __init__(self, Index: int = 0, Name: str = "", Arguments: Arguments | None = None):
        self.Index = Index
        self.Name = Name
        self.Arguments = Arguments if Arguments is not None else globals()["Arguments"]()


class ToolCall(GoStruct):
    __slots__ = ("ID", "Function")
    _go_type = "api.ToolCall"
    _json_fields = (("ID", "id", True), ("Function", "function", False))

    def __init__(self, ID: str = "", Function: ToolCallFunction | None = None):
        self.ID = ID
        self.Function = Function or ToolCallFunction()


class Message(GoStruct):
    __slots__ = ("Role", "Content", "Thinking", "Images", "ToolCalls", "ToolName", "ToolCallID")
    _go_type = "*api.Message"
    _go_pointer = True
    _json_fields: ClassVar[tuple[tuple[str, str, bool], ...]] = (
        ("Role", "role", False), ("Content", "content", False), ("Thinking", "thinking", True),
        ("Images", "images", True), ("ToolCalls", "tool_calls", True), ("ToolName", "tool_name", True),
        ("ToolCallID", "tool_call_id", True))

    def __init__(self, Role: str = "", Content: str = "", Thinking: str = "",
                 Images: list[Any] | None = None, ToolCalls: list[ToolCall] | None = None,
                 ToolName: str = "", ToolCallID: str = ""):
        self.Role = Role
        self.Content = Content
        self.Thinking = Thinking
        self.Images = Images or []
        self.ToolCalls = ToolCalls or []
        self.ToolName = ToolName
        self.ToolCallID = ToolCallID

    def copy(self) -> Message:
        return Message(self.Role, self.Content, self.Thinking, list(self.Images), list(self.ToolCalls),
                       self.ToolName, self.ToolCallID)


# -- conversion from API-shaped dicts (what clients send) ------------------------------------------
def _str(v: Any) -> str:
    return v if isinstance(v, str) else ""


def property_from_api(d: Any) -> ToolProperty:
    if not isinstance(d, dict):
        return ToolProperty()
    t = d.get("type")
    ptype = PropertyType([t] if isinstance(t, str) else [x for x in t if isinstance(x, str)]
                         if isinstance(t, list) else [])
    any_of = d.get("anyOf")
    props = d.get("properties")
    return ToolProperty(
        AnyOf=[property_from_api(p) for p in any_of] if isinstance(any_of, list) else [],
        Type=ptype, Items=d.get("items"), Description=_str(d.get("description")),
        Enum=list(d["enum"]) if isinstance(d.get("enum"), list) else [],
        Properties=PropertiesMap((k, property_from_api(v)) for k, v in props.items())
        if isinstance(props, dict) else None,
        Required=_strings(d.get("required")))


def _strings(v: Any) -> list[str]:
    return [x for x in v if isinstance(x, str)] if isinstance(v, list) else []


def tool_from_api(d: Any) -> Tool:
    d = d if isinstance(d, dict) else {}
    fn = d.get("function") if isinstance(d.get("function"), dict) else {}
    params = fn.get("parameters") if isinstance(fn.get("parameters"), dict) else {}
    props = params.get("properties") if isinstance(params.get("properties"), dict) else {}
    return Tool(
        Type=_str(d.get("type")), Items=d.get("items"),
        Function=ToolFunction(
            Name=_str(fn.get("name")), Description=_str(fn.get("description")),
            Parameters=ToolFunctionParameters(
                Type=_str(params.get("type")), Defs=params.get("$defs"), Items=params.get("items"),
                Required=_strings(params.get("required")),
                Properties=ToolProperties((k, property_from_api(v)) for k, v in props.items()))))


def tools_from_api(tools: Any) -> ToolList:
    if not tools:
        return ToolList()
    return ToolList(t if isinstance(t, Tool) else tool_from_api(t) for t in tools)


def _arguments(v: Any) -> Arguments:
    if isinstance(v, str):
        import json
        try:
            v = json.loads(v)
        except ValueError:
            return Arguments()
    return Arguments(v) if isinstance(v, dict) else Arguments()


def tool_call_from_api(d: Any, index: int = 0) -> ToolCall:
    d = d if isinstance(d, dict) else {}
    fn = d.get("function") if isinstance(d.get("function"), dict) else {}
    idx = fn.get("index", 0)  # clients usually omit it; Go's zero value is 0
    return ToolCall(ID=_str(d.get("id")), Function=ToolCallFunction(
        Index=idx if isinstance(idx, int) else index, Name=_str(fn.get("name")),
        Arguments=_arguments(fn.get("arguments"))))


def message_from_api(d: Any) -> Message:
    """A request message {"role","content","thinking","tool_calls","tool_name",...} as api.Message."""
    if isinstance(d, Message):
        return d.copy()
    d = d if isinstance(d, dict) else {}
    calls = d.get("tool_calls") or []
    return Message(
        Role=_str(d.get("role")).lower(), Content=_str(d.get("content")), Thinking=_str(d.get("thinking")),
        Images=list(d.get("images") or []),
        ToolCalls=[tool_call_from_api(c, i) for i, c in enumerate(calls)] if isinstance(calls, list) else [],
        ToolName=_str(d.get("tool_name")), ToolCallID=_str(d.get("tool_call_id")))


def message_from_template_values(d: Any) -> Message:
    """A message given with Go field names {"Role","Content","ToolCalls",...} (the power-user API)."""
    if isinstance(d, Message):
        return d
    d = d if isinstance(d, dict) else {}
    calls = []
    for i, c in enumerate(d.get("ToolCalls") or []):
        if isinstance(c, ToolCall):
            calls.append(c)
            continue
        fn = c.get("Function", {}) if isinstance(c, dict) else {}
        calls.append(ToolCall(ID=_str(c.get("ID")) if isinstance(c, dict) else "", Function=ToolCallFunction(
            Index=fn.get("Index", i), Name=_str(fn.get("Name")), Arguments=_arguments(fn.get("Arguments")))))
    return Message(Role=_str(d.get("Role")), Content=_str(d.get("Content")), Thinking=_str(d.get("Thinking")),
                   Images=list(d.get("Images") or []), ToolCalls=calls, ToolName=_str(d.get("ToolName")),
                   ToolCallID=_str(d.get("ToolCallID")))
