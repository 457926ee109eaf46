package main

// Stand-ins for Ollama's api types, with the same field names, JSON tags and String() methods,
// so that templates print them as Ollama's server would. Written for this oracle; Ollama's own
// module is not a dependency (the oracle must build offline with the standard library only).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Args is a tool call's arguments as templates see them: Ollama hands templates a plain Go map
// (its templateArgs), so they print and range with sorted keys, whatever order the client sent.
type Args map[string]any

func (a *Args) UnmarshalJSON(b []byte) error {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return err
	}
	*a = Args(numbers(m).(map[string]any))
	return nil
}

func (a Args) String() string {
	if a == nil {
		return "{}"
	}
	b, _ := json.Marshal(map[string]any(a))
	return string(b)
}

// PropMap is a nested property's "properties", like Ollama's *ToolPropertiesMap: it keeps the
// order the client sent when marshalled.
type PropMap struct {
	keys []string
	vals map[string]ToolProperty
}

func (m *PropMap) UnmarshalJSON(b []byte) error {
	m.vals = map[string]ToolProperty{}
	m.keys = nil
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil { // '{'
		return err
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		k := t.(string)
		var v ToolProperty
		if err := dec.Decode(&v); err != nil {
			return err
		}
		if _, seen := m.vals[k]; !seen {
			m.keys = append(m.keys, k)
		}
		m.vals[k] = v
	}
	return nil
}

func (m PropMap) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range m.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		vb, err := json.Marshal(m.vals[k])
		if err != nil {
			return nil, err
		}
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// Props is a tool's top-level properties as templates see them (Ollama's templateProperties):
// a Go map, sorted, printing as JSON.
type Props map[string]ToolProperty

func (p Props) String() string {
	if p == nil {
		return "{}"
	}
	b, _ := json.Marshal(map[string]ToolProperty(p))
	return string(b)
}

type PropertyType []string

func (pt *PropertyType) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		*pt = []string{s}
		return nil
	}
	var ss []string
	if err := json.Unmarshal(data, &ss); err != nil {
		return err
	}
	*pt = ss
	return nil
}

func (pt PropertyType) MarshalJSON() ([]byte, error) {
	if len(pt) == 1 {
		return json.Marshal(pt[0])
	}
	return json.Marshal([]string(pt))
}

func (pt PropertyType) String() string {
	if len(pt) == 0 {
		return ""
	}
	if len(pt) == 1 {
		return pt[0]
	}
	return fmt.Sprintf("%v", []string(pt))
}

type ToolProperty struct {
	AnyOf       []ToolProperty `json:"anyOf,omitempty"`
	Type        PropertyType   `json:"type,omitempty"`
	Items       any            `json:"items,omitempty"`
	Description string         `json:"description,omitempty"`
	Enum        []any          `json:"enum,omitempty"`
	Properties  *PropMap       `json:"properties,omitempty"`
	Required    []string       `json:"required,omitempty"`
}

var tsTypes = map[string]string{"string": "string", "number": "number", "integer": "number",
	"boolean": "boolean", "array": "any[]", "object": "Record<string, any>", "null": "null"}

func (tp ToolProperty) ToTypeScriptType() string {
	if len(tp.AnyOf) > 0 {
		var parts []string
		for _, p := range tp.AnyOf {
			parts = append(parts, p.ToTypeScriptType())
		}
		return strings.Join(parts, " | ")
	}
	if len(tp.Type) == 0 {
		return "any"
	}
	var parts []string
	for _, t := range tp.Type {
		ts, ok := tsTypes[t]
		if !ok {
			ts = "any"
		}
		parts = append(parts, ts)
	}
	return strings.Join(parts, " | ")
}

type ToolFunctionParameters struct {
	Type       string   `json:"type"`
	Defs       any      `json:"$defs,omitempty"`
	Items      any      `json:"items,omitempty"`
	Required   []string `json:"required,omitempty"`
	Properties Props    `json:"properties"`
}

func (t ToolFunctionParameters) String() string { b, _ := json.Marshal(t); return string(b) }

type ToolFunction struct {
	Name        string                 `json:"name"`
	Description string                 `json:"description,omitempty"`
	Parameters  ToolFunctionParameters `json:"parameters"`
}

func (t ToolFunction) String() string { b, _ := json.Marshal(t); return string(b) }

type Tool struct {
	Type     string       `json:"type"`
	Items    any          `json:"items,omitempty"`
	Function ToolFunction `json:"function"`
}

func (t Tool) String() string { b, _ := json.Marshal(t); return string(b) }

type Tools []Tool

func (t Tools) String() string { b, _ := json.Marshal(t); return string(b) }

type ToolCallFunction struct {
	Index     int    `json:"index"`
	Name      string `json:"name"`
	Arguments Args   `json:"arguments"`
}

type ToolCall struct {
	ID       string           `json:"id,omitempty"`
	Function ToolCallFunction `json:"function"`
}

type Message struct {
	Role       string     `json:"role"`
	Content    string     `json:"content"`
	Thinking   string     `json:"thinking,omitempty"`
	Images     []string   `json:"images,omitempty"`
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`
	ToolName   string     `json:"tool_name,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
}

// numbers turns json.Number into int (integral literal) or float64, matching Python's json.loads.
func numbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		s := x.String()
		if !strings.ContainsAny(s, ".eE") {
			if i, err := x.Int64(); err == nil {
				return int(i)
			}
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
		return x
	}
	return v
}
