"""The .pxd mirrors against the vendored headers: enums, struct fields and function names.

When the pin moves, this test names each enum member, struct field or function that drifted, so
the mirror is updated before anything miscompiles or silently reads the wrong field.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CSRC = REPO / "csrc"
LLAMA = REPO / "vendor" / "llama.cpp"
HEADERS = {
    "llama.h": LLAMA / "include" / "llama.h",
    "ggml.h": LLAMA / "ggml" / "include" / "ggml.h",
    "ggml-cpu.h": LLAMA / "ggml" / "include" / "ggml-cpu.h",
    "ggml-backend.h": LLAMA / "ggml" / "include" / "ggml-backend.h",
    "mtmd.h": LLAMA / "tools" / "mtmd" / "mtmd.h",
    "mtmd-helper.h": LLAMA / "tools" / "mtmd" / "mtmd-helper.h",
}

pytestmark = pytest.mark.skipif(not HEADERS["llama.h"].exists(),
                                reason="vendor/llama.cpp is not materialized (python vendor/sync.py)")

IDENT = r"[A-Za-z_]\w*"


def _strip_c_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def _eval_c(expr: str, known: dict[str, int]) -> int | None:
    expr = expr.strip().rstrip("u").strip()
    if not re.fullmatch(r"[\w\s<>|()+\-]*", expr):
        return None
    names = re.findall(IDENT, expr)
    if any(n not in known for n in names):
        return None
    try:
        return int(eval(expr, {"__builtins__": {}}, dict(known)))  # noqa: S307 — digits, shifts, known names
    except Exception:
        return None


def parse_header_enums(text: str) -> dict[str, dict[str, int | None]]:
    text = _strip_c_comments(text)
    enums: dict[str, dict[str, int | None]] = {}
    known: dict[str, int] = {}
    for m in re.finditer(rf"enum\s+({IDENT})\s*\{{(.*?)\}}", text, flags=re.S):
        members: dict[str, int | None] = {}
        nxt: int | None = 0
        for item in m.group(2).split(","):
            item = item.strip()
            if not item:
                continue
            name, _, value = item.partition("=")
            name = name.strip()
            val = _eval_c(value, known) if value else nxt
            members[name] = val
            if val is not None:
                known[name] = val
            nxt = val + 1 if val is not None else None
        enums[m.group(1)] = members
    return enums


def _split_fields(body: str) -> list[str]:
    fields: list[str] = []
    depth = 0
    stmt = ""
    for ch in body:
        if ch in "({":
            depth += 1
        elif ch in ")}":
            depth -= 1
        if ch == ";" and depth == 0:
            fields.append(stmt.strip())
            stmt = ""
        elif ch == "{" and depth == 1 and stmt.strip().startswith("union"):
            stmt = ""   # flatten an anonymous union: its members are fields of the struct
            depth = 0
        elif ch == "}" and depth == -1:
            depth = 0
        else:
            stmt += ch
    return [f for f in fields if f]


def _field_name(decl: str) -> str:
    fp = re.search(rf"\(\s*\*\s*({IDENT})\s*\)", decl)
    if fp:
        return fp.group(1)
    decl = re.sub(r"\[[^\]]*\]", "", decl)
    return re.findall(IDENT, decl)[-1]


def parse_header_structs(text: str) -> dict[str, list[str]]:
    text = _strip_c_comments(text)
    structs: dict[str, list[str]] = {}
    for m in re.finditer(rf"struct\s+({IDENT})\s*\{{", text):
        depth, i = 1, m.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        structs[m.group(1)] = [_field_name(f) for f in _split_fields(text[m.end():i - 1])]
    return structs


def parse_header_functions(text: str) -> set[str]:
    text = _strip_c_comments(text)
    return set(re.findall(rf"({IDENT})\s*\(", text))


def parse_pxd(path: Path):
    """enums {name: {member: value|None}}, structs {name: [fields]}, functions {name}."""
    enums: dict[str, dict[str, int | None]] = {}
    structs: dict[str, list[str]] = {}
    funcs: set[str] = set()
    current = None
    kind = None
    for raw in path.read_text().splitlines():
        line = raw.split("#")[0].rstrip()
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        s = line.strip()
        if indent <= 4 and current is not None and indent <= current[1]:
            current = None
        m = re.match(rf"(?:cdef\s+)?enum\s+({IDENT})\s*:", s)
        if m and indent == 4:
            current, kind = (m.group(1), indent), "enum"
            enums[m.group(1)] = {}
            continue
        m = re.match(rf"(?:ctypedef\s+)?struct\s+({IDENT})\s*:", s)
        if m and indent == 4:
            current, kind = (m.group(1), indent), "struct"
            structs[m.group(1)] = []
            continue
        if current is not None and indent > current[1]:
            if kind == "enum":
                name, _, value = s.partition("=")
                enums[current[0]][name.strip()] = int(value) if value.strip().lstrip("-").isdigit() else None
            else:
                decl = re.sub(r'"[^"]*"', "", s)
                fp = re.search(rf"\(\s*\*\s*({IDENT})\s*\)", decl)
                name = fp.group(1) if fp else re.findall(IDENT, re.sub(r"\[[^\]]*\]", "", decl))[-1]
                structs[current[0]].append(name)
            continue
        m = re.search(rf'({IDENT})\s*(?:"({IDENT})")?\s*\(', s)
        if indent == 4 and m and not s.startswith(("ctypedef", "struct", "cdef")):
            funcs.add(m.group(2) or m.group(1))
    # pxd-side aliases for C keywords ("async_") name the C field in quotes
    for fields in structs.values():
        fields[:] = [f.rstrip("_") if f == "async_" else f for f in fields]
    return enums, structs, funcs


@pytest.fixture(scope="module")
def header():
    text = "\n".join(p.read_text() for p in HEADERS.values())
    return parse_header_enums(text), parse_header_structs(text), parse_header_functions(text)


@pytest.fixture(scope="module", params=["llama.pxd", "ggml.pxd", "mtmd.pxd"])
def mirror(request):
    return request.param, parse_pxd(CSRC / request.param)


def test_parsers_see_the_mirror(mirror):
    name, (enums, structs, funcs) = mirror
    assert enums and funcs, f"{name}: the pxd parser found nothing — fix the test before trusting it"


def test_enums_match_header(header, mirror):
    h_enums = header[0]
    name, (enums, _, _) = mirror
    problems = []
    for enum, members in enums.items():
        if enum not in h_enums:
            problems.append(f"{name}: enum {enum} no longer exists upstream")
            continue
        upstream = h_enums[enum]
        missing = set(upstream) - set(members)
        extra = set(members) - set(upstream)
        if missing:
            problems.append(f"{name}: enum {enum} lacks {sorted(missing)}")
        if extra:
            problems.append(f"{name}: enum {enum} has members upstream dropped: {sorted(extra)}")
        for member, value in members.items():
            if value is not None and upstream.get(member) is not None and upstream[member] != value:
                problems.append(f"{name}: {enum}.{member} = {value}, upstream {upstream[member]}")
    assert not problems, "\n".join(problems)


def test_struct_fields_match_header(header, mirror):
    h_structs = header[1]
    name, (_, structs, _) = mirror
    problems = []
    for struct, fields in structs.items():
        if not fields:
            continue                                   # opaque forward declaration
        if struct not in h_structs:
            problems.append(f"{name}: struct {struct} no longer exists upstream")
        elif h_structs[struct] != fields:
            problems.append(f"{name}: struct {struct} fields differ:\n  pxd:      {fields}\n"
                            f"  upstream: {h_structs[struct]}")
    assert not problems, "\n".join(problems)


def test_functions_exist_upstream(header, mirror):
    h_funcs = header[2]
    name, (_, _, funcs) = mirror
    missing = sorted(f for f in funcs if f not in h_funcs)
    assert not missing, f"{name}: declared but not in the headers any more: {missing}"


def test_parser_catches_drift():
    """The comparison itself: a renamed field and a changed value are both reported."""
    h_enums = parse_header_enums("enum e { A = 1, B = 1 << 2, C };")
    assert h_enums == {"e": {"A": 1, "B": 4, "C": 5}}
    h_structs = parse_header_structs("struct s { int a; union { int x; float y; }; void (*cb)(int); char k[8]; };")
    assert h_structs == {"s": ["a", "x", "y", "cb", "k"]}
