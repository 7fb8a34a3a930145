package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() { os.Exit(run()) }

func run() int {
	var (
		mixinDir = flag.String("mixin", "mixin", "the mixin's folder (holds mixin.libsonnet)")
		out      = flag.String("o", "", "write the rule file here instead of standard output")
		config   = flag.String("config", "", "a jsonnet object merged into _config, e.g. {tcpstateSelector: 'job=\"tcpstate\"'}")
		runbook  = flag.String("runbook-url-base", "", "replaces _config.runbookURLBase (each runbook_url is this, '#' and the alert's name in lower case)")
	)
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: %s [flags]\nRenders the rule file of the tcpstate_exporter mixin as YAML.\n\n", filepath.Base(os.Args[0]))
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 0 {
		flag.Usage()
		return 2
	}
	data, err := Render(*mixinDir, Options{Config: *config, RunbookURLBase: *runbook})
	if err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		return 1
	}
	if *out == "" {
		_, err = os.Stdout.Write(data)
	} else {
		err = writeFileAtomic(*out, data)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		return 1
	}
	return 0
}

// writeFileAtomic replaces path with data, so an interrupted run never
// leaves half a rule file.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
