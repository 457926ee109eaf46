"""Go's spelling of values (pyollama.golang: json, strconv, fmt), pinned to what Go prints.

Blob digests depend on these bytes (a params blob with a float or a ``<`` in it must hash as Ollama's
does); the template engine's golden tests check the same code from the other side."""
from __future__ import annotations

import pytest

from pyollama.golang.fmt import format_value, sprintf
from pyollama.golang.json import UnsupportedValue, dumps, encode, encode_float, encode_string
from pyollama.golang.strconv import format_float, quote


@pytest.mark.parametrize(("f", "want"), [
    (1e-7, "1e-7"), (1.5e-10, "1.5e-10"), (0.000001, "0.000001"), (1e20, "100000000000000000000"),
    (1e21, "1e+21"), (123456789.0, "123456789"), (0.1, "0.1"), (-2.5, "-2.5"), (0.0, "0"), (-0.0, "-0"),
])
def test_json_float(f: float, want: str) -> None:           # json.Marshal(float64)
    assert encode_float(f) == want


@pytest.mark.parametrize("f", [float("nan"), float("inf"), -float("inf")])
def test_json_refuses_nan_and_inf(f: float) -> None:
    with pytest.raises(UnsupportedValue, match="json: unsupported value"):
        encode_float(f)


@pytest.mark.parametrize(("f", "want"), [
    (1e6, "1e+06"), (123456.0, "123456"), (0.0001, "0.0001"), (0.00001, "1e-05"), (3.0, "3"),
    (1.5e300, "1.5e+300"), (-0.0, "-0"), (float("inf"), "+Inf"), (float("nan"), "NaN"),
])
def test_fmt_v_float(f: float, want: str) -> None:           # fmt.Sprint(float64)
    assert format_float(f) == want
    assert format_value(f) == want and sprintf("%#v", [f]) == want


def test_json_string_escapes() -> None:
    assert encode_string("<a>&b\u2028\u2029\n\x01\"\\") == '"\\u003ca\\u003e\\u0026b\\u2028\\u2029\\n\\u0001\\"\\\\"'
    # A lone surrogate: invalid UTF-8 in a template value (Go escapes it), or a "\ud800" that Go's JSON
    # decoder already turned into U+FFFD in store data (Go writes the character).
    assert encode_string("x\ud800") == '"x\\ufffd"'
    assert encode_string("x\ud800", surrogates="decoded") == '"x\ufffd"'


def test_strconv_quote() -> None:                            # %q and %#v of a string
    assert quote('a"b\\\t\x00\x7f é\u00a0\U0001f600') == '"a\\"b\\\\\\t\\x00\\x7f é\\u00a0\U0001f600"'
    assert quote("é\U0001f600", ascii_only=True) == '"\\u00e9\\U0001f600"'
    assert sprintf("%#v", ["x y"]) == '"x y"' and format_value("x y") == "x y"
    assert [sprintf("%#v", [v]) for v in ("a", 1, 1e6, None, True)] == ['"a"', "1", "1e+06", "<nil>", "true"]
    assert format_value(["a", 1, 1e6, None, True]) == "[a 1 1e+06 <nil> true]"


def test_store_dumps_struct_and_map_order() -> None:
    value = {"b": 1, "a": [1.0, None, True, "<"]}
    assert dumps(value) == '{"b":1,"a":[1,null,true,"\\u003c"]}'          # a struct: fields in order
    assert dumps(value, sort_keys=True) == '{"a":[1,null,true,"\\u003c"],"b":1}'   # a Go map: sorted
    assert encode({"stop": ["<end>"], "temperature": 0}, sort_keys=True) == \
        b'{"stop":["\\u003cend\\u003e"],"temperature":0}\n'
