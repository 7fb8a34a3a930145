// Package scriptlint finds, in the repository's shell scripts and Makefile,
// the pipelines that fail at random on a busy machine or hide why they
// failed:
//
//   - a command that stops reading early (grep -q/-m/-l, head, cmp, an awk
//     program that exits) after a pipe: under `set -o pipefail` the writer
//     dies of SIGPIPE when it writes after the reader has gone, and the
//     pipeline fails although the check was met — more often the busier the
//     machine. Keep the output in a variable or a file and grep that;
//   - a pipeline whose first command's stderr goes to /dev/null: when it
//     fails, the check after the pipe fails with nothing saying why;
//   - stderr thrown away inside a command substitution whose output is then
//     used: the same, for `x=$(tool 2>/dev/null)`.
//
// It reads text, not a shell grammar: a pipe inside a quoted string counts
// too, which is what catches `inside 'journalctl | grep -q …'`.
package scriptlint

import (
	"regexp"
	"strings"
)

// Finding is one offending pipeline.
type Finding struct {
	Line int    // first line of the (joined) command, 1-based
	Rule string // what is wrong, in a sentence
	Text string // the command as joined from its lines
}

// Check returns the findings in one script's text.
func Check(text string) []Finding {
	var out []Finding
	for _, c := range logicalLines(text) {
		for _, rule := range checkCommand(c.text) {
			out = append(out, Finding{Line: c.line, Rule: rule, Text: c.text})
		}
	}
	return out
}

type command struct {
	line int
	text string
}

// logicalLines joins lines continued with a trailing backslash, pipe, && or
// ||, and drops comment lines.
func logicalLines(text string) []command {
	var out []command
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 {
			if trimmed == "" || strings.HasPrefix(trimmed, "#") {
				continue
			}
			start = i + 1
		} else if strings.HasPrefix(trimmed, "#") {
			continue
		}
		cur.WriteString(strings.TrimSuffix(trimmed, "\\"))
		cur.WriteByte(' ')
		if strings.HasSuffix(trimmed, "\\") || strings.HasSuffix(trimmed, "|") || strings.HasSuffix(trimmed, "&&") {
			continue
		}
		out = append(out, command{line: start, text: strings.TrimSpace(cur.String())})
		cur.Reset()
	}
	if cur.Len() > 0 {
		out = append(out, command{line: start, text: strings.TrimSpace(cur.String())})
	}
	return out
}

var (
	devNull = regexp.MustCompile(`(2|&)>\s*/dev/null`)
	awkExit = regexp.MustCompile(`\bexit\b`)
)

func checkCommand(c string) []string {
	var rules []string
	for _, stage := range pipedStages(c) {
		if cmd := earlyExit(stage); cmd != "" {
			rules = append(rules, "`"+cmd+"` after a pipe stops reading early: under pipefail the command before it can die of SIGPIPE and fail the pipeline; keep the output in a variable or file and check that")
		}
	}
	for _, loc := range devNull.FindAllStringIndex(c, -1) {
		if pipeFollows(c[loc[1]:]) {
			rules = append(rules, "stderr of a pipeline's command goes to /dev/null: when it fails, nothing says why; send it to the log")
		}
		if insideSubstitution(c[:loc[0]]) {
			rules = append(rules, "stderr thrown away in a command substitution whose output is used: send it to the log")
		}
	}
	return rules
}

// pipedStages returns the text after each single `|` (not `||`).
func pipedStages(c string) []string {
	var out []string
	for i := 0; i < len(c); i++ {
		if c[i] != '|' {
			continue
		}
		if i+1 < len(c) && c[i+1] == '|' {
			i++
			continue
		}
		if i > 0 && c[i-1] == '|' {
			continue
		}
		j := i + 1
		if j < len(c) && c[j] == '&' {
			j++
		}
		out = append(out, c[j:])
	}
	return out
}

// earlyExit names the command at the start of stage if it may exit before
// reading all of its input, or returns "".
func earlyExit(stage string) string {
	words := strings.Fields(stage)
	for len(words) > 0 && (words[0] == "!" || words[0] == "{" || words[0] == "(" || words[0] == "exec" || words[0] == "command" ||
		strings.Contains(words[0], "=") && !strings.HasPrefix(words[0], "-")) {
		words = words[1:]
	}
	if len(words) == 0 {
		return ""
	}
	name := strings.Trim(words[0], `"'(`)
	switch name {
	case "head", "cmp":
		return name
	case "grep", "egrep", "fgrep":
		for _, w := range words[1:] {
			w = strings.Trim(w, `"'`)
			if strings.HasPrefix(w, "--") {
				for _, long := range []string{"--quiet", "--silent", "--max-count", "--files-with-matches", "--files-without-match"} {
					if w == long || strings.HasPrefix(w, long+"=") {
						return name + " " + long
					}
				}
				continue
			}
			if !strings.HasPrefix(w, "-") || w == "-" {
				break // the pattern: options end here
			}
			for _, f := range w[1:] {
				switch f {
				case 'q', 'm', 'l', 'L':
					return name + " -" + string(f)
				}
			}
		}
	case "awk", "gawk", "mawk":
		if awkExit.MatchString(stageCommand(stage)) {
			return name + " … exit"
		}
	}
	return ""
}

// stageCommand cuts a stage at the next pipe or && (not at a semicolon,
// which an awk program may hold).
func stageCommand(stage string) string {
	for i := 0; i < len(stage); i++ {
		switch stage[i] {
		case '|':
			return stage[:i]
		case '&':
			if i+1 < len(stage) && stage[i+1] == '&' {
				return stage[:i]
			}
		}
	}
	return stage
}

// pipeFollows reports whether rest (what follows a redirection) reaches a
// single pipe before the command ends.
func pipeFollows(rest string) bool {
	for i := 0; i < len(rest); i++ {
		switch rest[i] {
		case ';', ')', '`':
			return false
		case '&':
			if i+1 < len(rest) && rest[i+1] == '&' {
				return false
			}
		case '|':
			return !(i+1 < len(rest) && rest[i+1] == '|')
		}
	}
	return false
}

// insideSubstitution reports whether before (the text up to a redirection)
// leaves a $( … ) open.
func insideSubstitution(before string) bool {
	var stack []bool // true: opened by $(
	for i := 0; i < len(before); i++ {
		switch before[i] {
		case '(':
			stack = append(stack, i > 0 && before[i-1] == '$')
		case ')':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		}
	}
	for _, subst := range stack {
		if subst {
			return true
		}
	}
	return false
}
