// Command oracle renders templates with Go's own text/template and writes the expected outputs
// that pyollama's template tests compare against. See README.md beside this file.
//
//	go run . golden ../golden     # every <family>/template.gotmpl × shapes/*.json → <family>/<shape>.out
//	go run . sem ../gosem         # cases.json → expected.json (raw Go semantics, errors included)
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/template"
	"text/template/parse"
)

// funcs registers Ollama's template helpers. The date helpers are fixed here so goldens are stable.
var funcs = template.FuncMap{
	"json": func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	},
	"currentDate":   func(args ...string) string { return "2025-01-02" },
	"yesterdayDate": func(args ...string) string { return "2025-01-01" },
	"toTypeScriptType": func(v any) string {
		if p, ok := v.(ToolProperty); ok {
			return p.ToTypeScriptType()
		}
		if p, ok := v.(*ToolProperty); ok && p != nil {
			return p.ToTypeScriptType()
		}
		return "any"
	},
}

func newTemplate(text string) (*template.Template, error) {
	return template.New("").Option("missingkey=zero").Funcs(funcs).Parse(text)
}

// ---------------------------------------------------------------------------------------------
// raw Go semantics

type semCase struct {
	Name     string          `json:"name"`
	Template string          `json:"template"`
	Data     json.RawMessage `json:"data"`
}

type semResult struct {
	Out   *string `json:"out,omitempty"`
	Error *string `json:"error,omitempty"`
	Phase string  `json:"phase,omitempty"`
}

func decodeData(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		panic(err)
	}
	return numbers(v)
}

func runSem(dir string) {
	b, err := os.ReadFile(filepath.Join(dir, "cases.json"))
	must(err)
	var cases []semCase
	must(json.Unmarshal(b, &cases))
	results := map[string]semResult{}
	for _, c := range cases {
		t, err := newTemplate(c.Template)
		if err != nil {
			msg := err.Error()
			results[c.Name] = semResult{Error: &msg, Phase: "parse"}
			continue
		}
		var out bytes.Buffer
		if err := t.Execute(&out, decodeData(c.Data)); err != nil {
			msg := err.Error()
			results[c.Name] = semResult{Error: &msg, Phase: "exec"}
			continue
		}
		s := out.String()
		results[c.Name] = semResult{Out: &s}
	}
	writeJSON(filepath.Join(dir, "expected.json"), results)
}

// ---------------------------------------------------------------------------------------------
// Ollama's rendering model (template.Template.Execute), rewritten here for the oracle

type request struct {
	Messages []Message      `json:"messages"`
	Tools    Tools          `json:"tools"`
	Think    any            `json:"think"`
	Prompt   string         `json:"prompt"`
	Suffix   string         `json:"suffix"`
	Extra    map[string]any `json:"-"`
}

func identifiers(n parse.Node) []string {
	var names []string
	switch n := n.(type) {
	case *parse.ListNode:
		for _, c := range n.Nodes {
			names = append(names, identifiers(c)...)
		}
	case *parse.TemplateNode:
		if n.Pipe != nil {
			names = append(names, identifiers(n.Pipe)...)
		}
	case *parse.ActionNode:
		names = append(names, identifiers(n.Pipe)...)
	case *parse.BranchNode:
		names = append(names, identifiers(n.Pipe)...)
		for _, l := range []*parse.ListNode{n.List, n.ElseList} {
			if l != nil {
				names = append(names, identifiers(l)...)
			}
		}
	case *parse.IfNode:
		names = append(names, identifiers(&n.BranchNode)...)
	case *parse.RangeNode:
		names = append(names, identifiers(&n.BranchNode)...)
	case *parse.WithNode:
		names = append(names, identifiers(&n.BranchNode)...)
	case *parse.PipeNode:
		for _, c := range n.Cmds {
			for _, a := range c.Args {
				names = append(names, identifiers(a)...)
			}
		}
	case *parse.FieldNode:
		names = append(names, n.Ident...)
	case *parse.VariableNode:
		names = append(names, n.Ident...)
	}
	return names
}

func vars(t *template.Template) []string {
	set := map[string]bool{}
	for _, tt := range t.Templates() {
		if tt.Tree == nil {
			continue
		}
		for _, n := range identifiers(tt.Root) {
			set[strings.ToLower(n)] = true
		}
	}
	var out []string
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// deleteAfterResponse copies nothing: the caller passes a fresh parse. It keeps every node up to
// and including the first {{ .Response }} field and drops everything after it.
func deleteAfterResponse(n parse.Node) parse.Node {
	cut := false
	var walk func(n parse.Node) parse.Node
	walk = func(n parse.Node) parse.Node {
		if f, ok := n.(*parse.FieldNode); ok && slices.Contains(f.Ident, "Response") {
			cut = true
			return n
		}
		if cut {
			return nil
		}
		switch t := n.(type) {
		case *parse.ListNode:
			var nodes []parse.Node
			for _, c := range t.Nodes {
				if k := walk(c); k != nil {
					nodes = append(nodes, k)
				}
			}
			t.Nodes = nodes
			return t
		case *parse.IfNode:
			walkBranch(&t.BranchNode, walk)
		case *parse.WithNode:
			walkBranch(&t.BranchNode, walk)
		case *parse.RangeNode:
			walkBranch(&t.BranchNode, walk)
		case *parse.ActionNode:
			p := walk(t.Pipe)
			if p == nil {
				return nil
			}
			t.Pipe = p.(*parse.PipeNode)
		case *parse.PipeNode:
			var cmds []*parse.CommandNode
			for _, c := range t.Cmds {
				var args []parse.Node
				for _, a := range c.Args {
					if k := walk(a); k != nil {
						args = append(args, k)
					}
				}
				if len(args) == 0 {
					return nil
				}
				c.Args = args
				cmds = append(cmds, c)
			}
			if len(cmds) == 0 {
				return nil
			}
			t.Cmds = cmds
		}
		return n
	}
	return walk(n)
}

func walkBranch(b *parse.BranchNode, walk func(parse.Node) parse.Node) {
	b.List = walk(b.List).(*parse.ListNode)
	if b.ElseList != nil {
		if l := walk(b.ElseList); l != nil {
			b.ElseList = l.(*parse.ListNode)
		} else {
			b.ElseList = nil
		}
	}
}

func appendResponse(t *template.Template) {
	v := vars(t)
	if !slices.Contains(v, "messages") && !slices.Contains(v, "response") {
		t.Tree.Root.Nodes = append(t.Tree.Root.Nodes, &parse.ActionNode{
			NodeType: parse.NodeAction,
			Pipe: &parse.PipeNode{NodeType: parse.NodePipe, Cmds: []*parse.CommandNode{{
				NodeType: parse.NodeCommand,
				Args:     []parse.Node{&parse.FieldNode{NodeType: parse.NodeField, Ident: []string{"Response"}}},
			}}},
		})
	}
}

func collate(msgs []Message) (string, []*Message) {
	var system []string
	var out []*Message
	for i := range msgs {
		m := msgs[i]
		m.Role = strings.ToLower(m.Role)
		if m.Role == "system" {
			system = append(system, m.Content)
		}
		if len(out) > 0 && out[len(out)-1].Role == m.Role && m.Role != "tool" {
			out[len(out)-1].Content += "\n\n" + m.Content
		} else {
			mm := m
			out = append(out, &mm)
		}
	}
	return strings.Join(system, "\n\n"), out
}

func thinkValues(think any) (bool, string, bool) {
	switch v := think.(type) {
	case bool:
		if v {
			return true, "medium", true
		}
		return false, "", true
	case string:
		return true, v, true
	}
	return false, "", false
}

func renderOllama(text string, req request) (string, error) {
	t, err := newTemplate(text)
	if err != nil {
		return "", err
	}
	appendResponse(t)
	think, level, isSet := thinkValues(req.Think)
	system, msgs := collate(req.Messages)
	var b bytes.Buffer
	if req.Prompt != "" && req.Suffix != "" {
		err := t.Execute(&b, map[string]any{"Prompt": req.Prompt, "Suffix": req.Suffix, "Response": "",
			"Think": think, "ThinkLevel": level, "IsThinkSet": isSet})
		return b.String(), err
	}
	if slices.Contains(vars(t), "messages") {
		err := t.Execute(&b, map[string]any{"System": system, "Messages": msgs, "Tools": req.Tools,
			"Response": "", "Think": think, "ThinkLevel": level, "IsThinkSet": isSet})
		return b.String(), err
	}
	system = ""
	var prompt, response string
	exec := func() error {
		err := t.Execute(&b, map[string]any{"System": system, "Prompt": prompt, "Response": response,
			"Think": think, "ThinkLevel": level, "IsThinkSet": isSet})
		system, prompt, response = "", "", ""
		return err
	}
	for _, m := range msgs {
		switch m.Role {
		case "system":
			if prompt != "" || response != "" {
				if err := exec(); err != nil {
					return "", err
				}
			}
			system = m.Content
		case "user":
			if response != "" {
				if err := exec(); err != nil {
					return "", err
				}
			}
			prompt = m.Content
		case "assistant":
			response = m.Content
		}
	}
	// A fresh parse gives an unshared tree to cut.
	t2, _ := newTemplate(text)
	appendResponse(t2)
	t2.Tree.Root = deleteAfterResponse(t2.Tree.Root).(*parse.ListNode)
	err = t2.Execute(&b, map[string]any{"System": system, "Prompt": prompt, "Response": response,
		"Think": think, "ThinkLevel": level, "IsThinkSet": isSet})
	return b.String(), err
}

func runGolden(dir string) {
	shapes, err := filepath.Glob(filepath.Join(dir, "shapes", "*.json"))
	must(err)
	families, err := filepath.Glob(filepath.Join(dir, "*", "template.gotmpl"))
	must(err)
	for _, f := range families {
		tb, err := os.ReadFile(f)
		must(err)
		for _, s := range shapes {
			sb, err := os.ReadFile(s)
			must(err)
			var req request
			must(json.Unmarshal(sb, &req))
			out, err := renderOllama(string(tb), req)
			if err != nil {
				out = "ERROR: " + err.Error()
			}
			name := strings.TrimSuffix(filepath.Base(s), ".json") + ".out"
			must(os.WriteFile(filepath.Join(filepath.Dir(f), name), []byte(out), 0o644))
		}
	}
	fmt.Printf("%d templates x %d shapes\n", len(families), len(shapes))
}

func writeJSON(path string, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	must(enc.Encode(v))
	must(os.WriteFile(path, b.Bytes(), 0o644))
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: oracle golden|sem DIR")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "golden":
		runGolden(os.Args[2])
	case "sem":
		runSem(os.Args[2])
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", os.Args[1])
		os.Exit(2)
	}
}
