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
		dashDir  = flag.String("dashboards", "", "write the dashboards (grafanaDashboards), one JSON file each, into this folder instead of the rule file")
	)
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: %s [flags]\nRenders the rule file of the tcpstate_exporter mixin as YAML, or its dashboards as JSON.\n\n", filepath.Base(os.Args[0]))
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 0 {
		flag.Usage()
		return 2
	}
	o := Options{Config: *config, RunbookURLBase: *runbook}
	if *dashDir != "" {
		if *out != "" {
			fmt.Fprintln(os.Stderr, "render: -o and -dashboards exclude each other")
			return 2
		}
		if err := writeDashboards(*mixinDir, o, *dashDir); err != nil {
			fmt.Fprintln(os.Stderr, "render:", err)
			return 1
		}
		return 0
	}
	data, err := Render(*mixinDir, o)
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

// writeDashboards writes each dashboard the mixin renders into dir (made
// if missing), under its name in grafanaDashboards.
func writeDashboards(mixinDir string, o Options, dir string) error {
	dashboards, err := RenderDashboards(mixinDir, o)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, data := range dashboards {
		if err := writeFileAtomic(filepath.Join(dir, name), data); err != nil {
			return err
		}
	}
	return nil
}
