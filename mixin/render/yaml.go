package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

// keyOrder is the order in which the writer prints the keys it knows, as
// Prometheus' documentation lists them; other keys follow, sorted.
var keyOrder = []string{
	"name", "interval", "query_offset", "limit",
	"record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations",
	"summary", "description", "runbook_url",
}

func orderedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	rank := func(k string) int {
		if i := slices.Index(keyOrder, k); i >= 0 {
			return i
		}
		return len(keyOrder)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a, b)
	})
	return keys
}

// writeRuleFile prints the rule file: the header as a comment, then the
// groups, a blank line between groups and between rules, each rule's
// comment above it.
func writeRuleFile(rf *ruleFile) ([]byte, error) {
	var b bytes.Buffer
	writeComment(&b, 0, rf.Header)
	b.WriteString("\ngroups:\n")
	for gi, g := range rf.Groups {
		if gi > 0 {
			b.WriteString("\n")
		}
		if _, ok := g.Group["name"]; !ok {
			return nil, fmt.Errorf("rule group %d has no name", gi+1)
		}
		if err := writeMapping(&b, 2, true, g.Group, nil); err != nil {
			return nil, err
		}
		b.WriteString("    rules:\n")
		for ri, r := range g.Rules {
			if ri > 0 {
				b.WriteString("\n")
			}
			if r.Comment != nil {
				writeComment(&b, 6, *r.Comment)
			}
			if err := writeMapping(&b, 6, true, r.Rule, r.Folded); err != nil {
				return nil, fmt.Errorf("group %v, rule %d: %w", g.Group["name"], ri+1, err)
			}
		}
	}
	return b.Bytes(), nil
}

func writeComment(b *bytes.Buffer, indent int, text string) {
	pad := strings.Repeat(" ", indent)
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if line == "" {
			b.WriteString(pad + "#\n")
		} else {
			b.WriteString(pad + "# " + line + "\n")
		}
	}
}

// writeMapping prints m with its keys at column indent, or, as a list item,
// with "- " at column indent and its keys two columns further. folded
// applies to the mapping's string values and to those of its nested
// mappings (annotations).
func writeMapping(b *bytes.Buffer, indent int, item bool, m map[string]any, folded map[string][]string) error {
	col := indent
	if item {
		col += 2
	}
	for i, k := range orderedKeys(m) {
		prefix := strings.Repeat(" ", col)
		if item && i == 0 {
			prefix = strings.Repeat(" ", indent) + "- "
		}
		b.WriteString(prefix + key(k) + ":")
		if err := writeValue(b, col, m[k], folded[k]); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		if sub, ok := m[k].(map[string]any); ok && len(sub) > 0 {
			if err := writeMapping(b, col+2, false, sub, folded); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
	}
	return nil
}

// writeValue prints what follows "key:" for a value of a mapping whose
// keys are at column col. A non-empty mapping is left to the caller.
func writeValue(b *bytes.Buffer, col int, v any, folded []string) error {
	switch v := v.(type) {
	case string:
		writeString(b, col+2, v, folded)
	case map[string]any:
		if len(v) == 0 {
			b.WriteString(" {}\n")
		} else {
			b.WriteString("\n")
		}
	case []any:
		if len(v) == 0 {
			b.WriteString(" []\n")
			return nil
		}
		b.WriteString("\n")
		for _, e := range v {
			if m, ok := e.(map[string]any); ok && len(m) > 0 {
				if err := writeMapping(b, col+2, true, m, nil); err != nil {
					return err
				}
				continue
			}
			b.WriteString(strings.Repeat(" ", col+2) + "-")
			if err := writeValue(b, col+2, e, nil); err != nil {
				return err
			}
		}
	case json.Number:
		b.WriteString(" " + v.String() + "\n")
	case bool:
		fmt.Fprintf(b, " %t\n", v)
	case nil:
		b.WriteString(" null\n")
	default:
		return fmt.Errorf("cannot write a %T", v)
	}
	return nil
}

func key(k string) string {
	if plainSafe(k) {
		return k
	}
	return quoted(k)
}

// writeString prints s after "key:" as the most readable YAML that reads
// back as s: the folded lines it was written in (>-), a literal block (|)
// for a multi-line string, a plain scalar, or a double-quoted one.
// Continuation lines start at column col.
func writeString(b *bytes.Buffer, col int, s string, folded []string) {
	pad := strings.Repeat(" ", col)
	switch {
	case foldable(s, folded):
		b.WriteString(" >-\n")
		for _, line := range folded {
			b.WriteString(pad + line + "\n")
		}
	case literalSafe(s):
		content := strings.TrimRight(s, "\n")
		trailing := len(s) - len(content)
		// Chomping: strip (|-) no final newline, clip (|) one, keep (|+) more.
		switch {
		case trailing == 0:
			b.WriteString(" |-\n")
		case trailing == 1:
			b.WriteString(" |\n")
		default:
			b.WriteString(" |+\n")
		}
		for _, line := range strings.Split(content, "\n") {
			if line == "" {
				b.WriteString("\n")
			} else {
				b.WriteString(pad + line + "\n")
			}
		}
		// Keep chomping (|+): the newlines after the first are empty lines.
		b.WriteString(strings.Repeat("\n", max(trailing-1, 0)))
	case plainSafe(s):
		b.WriteString(" " + s + "\n")
	default:
		b.WriteString(" " + quoted(s) + "\n")
	}
}

// foldable reports whether lines, printed in folded style (>-), read back as
// s: YAML joins such lines with one space when none is empty, none starts
// or ends with white space, and none holds a character a block cannot.
func foldable(s string, lines []string) bool {
	if len(lines) == 0 || strings.Join(lines, " ") != s {
		return false
	}
	for _, l := range lines {
		if l == "" || strings.TrimSpace(l) != l || !printable(l) {
			return false
		}
	}
	return true
}

// literalSafe reports whether s can be a literal block: several lines,
// the first not indented (the block would need an indentation indicator),
// no white space at a line's end and nothing a block cannot hold.
func literalSafe(s string) bool {
	if !strings.Contains(s, "\n") || strings.HasPrefix(s, " ") || strings.HasPrefix(s, "\n") {
		return false
	}
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimRightFunc(l, unicode.IsSpace) != l || !printable(l) {
			return false
		}
	}
	return true
}

func printable(s string) bool {
	for _, r := range s {
		if r == '\t' || !unicode.IsPrint(r) && r != ' ' || r == '\ufeff' {
			return false
		}
	}
	return true
}

// notString matches the plain scalars YAML 1.1 or 1.2 reads as something
// else than a string: booleans, null, numbers (also in base 60 and with
// underscores), dates, infinities, the merge key.
var notString = regexp.MustCompile(`(?i)^(` +
	`y|n|yes|no|true|false|on|off|null|~|<<|=|` +
	`[-+]?(\.[0-9_]+|[0-9][0-9_]*(\.[0-9_]*)?)(e[-+]?[0-9]+)?|` +
	`[-+]?0(x[0-9a-f_]+|o?[0-7_]+|b[01_]+)|` +
	`[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?|` +
	`[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}.*|` +
	`[-+]?\.(inf|nan))$`)

// plainSafe reports whether s can be written unquoted on one line and read
// back as the same string.
func plainSafe(s string) bool {
	if s == "" || strings.TrimSpace(s) != s || !printable(s) || notString.MatchString(s) {
		return false
	}
	if strings.ContainsAny(s[:1], "-?:,[]{}#&*!|>'\"%@`") {
		return false
	}
	return !strings.Contains(s, ": ") && !strings.Contains(s, " #") && !strings.HasSuffix(s, ":")
}

// quoted is s as a YAML double-quoted scalar: JSON's escapes are YAML's.
func quoted(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}
