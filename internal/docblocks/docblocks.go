// Package docblocks finds the command blocks of the Markdown documentation
// (fenced ```sh, ```bash, ```shell and ```console blocks) and the markers
// that say how a test runs them. A block runs as written unless the line
// before its fence is one of:
//
//	<!-- not-run: REASON -->   it cannot run on a test machine (a
//	                           placeholder such as REGISTRY, a real
//	                           cluster, systemd as PID 1); REASON says why
//	<!-- serves: URL -->       it starts a server and keeps running: it
//	                           passes when URL (on loopback) answers 200
package docblocks

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Block is one command block.
type Block struct {
	File   string
	Line   int    // the opening fence's line, 1-based
	Lang   string // sh, bash, shell or console
	Text   string // the commands, the fence's indentation removed
	NotRun string // the reason, when marked not-run
	Serves string // the URL, when marked as a server
}

// Where names the block for messages.
func (b Block) Where() string { return fmt.Sprintf("%s:%d", b.File, b.Line) }

var (
	commandLangs = map[string]bool{"sh": true, "bash": true, "shell": true, "console": true}
	notRun       = regexp.MustCompile(`^<!--\s*not-run\s*:\s*(.*?)\s*-->$`)
	serves       = regexp.MustCompile(`^<!--\s*serves\s*:\s*(\S*)\s*-->$`)
	anyMarker    = regexp.MustCompile(`^<!--\s*(not-?run|serves?)\b`)
)

// Parse returns the command blocks of one Markdown file and the problems
// with their markers.
func Parse(file, text string) ([]Block, []error) {
	var blocks []Block
	var errs []error
	lines := strings.Split(text, "\n")
	prev := "" // the last non-blank line before the current one
	for i := 0; i < len(lines); i++ {
		trimmed := strings.TrimSpace(lines[i])
		fence, lang, ok := openFence(lines[i])
		if !ok {
			if trimmed != "" {
				prev = trimmed
			}
			continue
		}
		indent := len(lines[i]) - len(strings.TrimLeft(lines[i], " \t"))
		var body []string
		closed := false
		start := i + 1
		for i++; i < len(lines); i++ {
			if strings.TrimSpace(lines[i]) == fence {
				closed = true
				break
			}
			body = append(body, dedent(lines[i], indent))
		}
		if !closed {
			errs = append(errs, fmt.Errorf("%s:%d: the ``` block is never closed", file, start))
			break
		}
		marker := prev
		prev = fence
		if !commandLangs[lang] {
			continue
		}
		b := Block{File: file, Line: start, Lang: lang, Text: strings.Join(body, "\n") + "\n"}
		if lang == "console" {
			b.Text = consoleCommands(body)
		}
		switch {
		case notRun.MatchString(marker):
			b.NotRun = notRun.FindStringSubmatch(marker)[1]
			if b.NotRun == "" {
				errs = append(errs, fmt.Errorf("%s: the not-run marker gives no reason: write <!-- not-run: REASON -->", b.Where()))
			}
		case serves.MatchString(marker):
			b.Serves = serves.FindStringSubmatch(marker)[1]
			if err := loopbackURL(b.Serves); err != nil {
				errs = append(errs, fmt.Errorf("%s: serves marker: %w", b.Where(), err))
			}
		case anyMarker.MatchString(marker):
			errs = append(errs, fmt.Errorf("%s: malformed marker %q: write <!-- not-run: REASON --> or <!-- serves: URL -->", b.Where(), marker))
		}
		blocks = append(blocks, b)
	}
	return blocks, errs
}

// openFence reports whether line opens a fenced block, with its fence and
// language.
func openFence(line string) (fence, lang string, ok bool) {
	t := strings.TrimSpace(line)
	for _, f := range []string{"```", "~~~"} {
		if strings.HasPrefix(t, f) {
			return f, strings.TrimSpace(strings.TrimLeft(t, f[:1])), true
		}
	}
	return "", "", false
}

func dedent(line string, n int) string {
	for n > 0 && len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
		line, n = line[1:], n-1
	}
	return line
}

// consoleCommands keeps the commands of a console block: the lines after a
// "$ " prompt and the lines that continue them with a trailing backslash.
func consoleCommands(body []string) string {
	var out []string
	cont := false
	for _, l := range body {
		switch {
		case strings.HasPrefix(l, "$ "):
			out = append(out, strings.TrimPrefix(l, "$ "))
		case cont:
			out = append(out, l)
		default:
			continue
		}
		cont = strings.HasSuffix(l, "\\")
	}
	return strings.Join(out, "\n") + "\n"
}

func loopbackURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if u.Scheme != "http" || u.Port() == "" {
		return fmt.Errorf("%q: want http://127.0.0.1:PORT/PATH", s)
	}
	if h := u.Hostname(); h != "127.0.0.1" && h != "localhost" {
		return fmt.Errorf("%q: the server must be polled on 127.0.0.1", s)
	}
	return nil
}
