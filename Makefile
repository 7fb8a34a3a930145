# tcpstate_exporter — build, test and release targets.
# Tool versions are pinned here and nowhere else.

GO          ?= go
BIN         := tcpstate_exporter
VERSION     := $(shell cat VERSION)
# A source tarball has no .git: its version information says "unknown".
REVISION    := $(if $(wildcard .git),$(shell git rev-parse HEAD),unknown)
BRANCH      := $(if $(wildcard .git),$(shell git rev-parse --abbrev-ref HEAD),unknown)
BUILD_USER  := $(shell whoami)@$(shell hostname)
BUILD_DATE  := $(shell date -u +%Y%m%d-%H:%M:%S)
VERSION_PKG := github.com/prometheus/common/version
LDFLAGS     := -s -w \
	-X $(VERSION_PKG).Version=$(VERSION) \
	-X $(VERSION_PKG).Revision=$(REVISION) \
	-X $(VERSION_PKG).Branch=$(BRANCH) \
	-X $(VERSION_PKG).BuildUser=$(BUILD_USER) \
	-X $(VERSION_PKG).BuildDate=$(BUILD_DATE)

# Pinned tools. go-jsonnet, which renders the mixin, is pinned in
# mixin/render/go.mod.
PROMTOOL3_VERSION := v0.316.0
PROMTOOL3         := .build/promtool-$(PROMTOOL3_VERSION)/promtool
VMALERT_TOOL_VERSION := v1.151.0
VMALERT_TOOL         := .build/vmalert-tool-$(VMALERT_TOOL_VERSION)/vmalert-tool
# Thanos, for `make fleet-test`; built by e2e/fleet/build-thanos.sh with the
# newer Go it needs (THANOS_GOTOOLCHAIN, for that build only).
THANOS_VERSION     := v0.42.5
THANOS_GOTOOLCHAIN := go1.27.3
THANOS             := .build/thanos-$(THANOS_VERSION)/thanos
# jsonnetfmt and jsonnet-lint come from the go-jsonnet that mixin/render/go.mod
# pins, so the formatter, the linter and the renderer are one version.
JSONNET_VERSION := $(shell awk '$$1 == "github.com/google/go-jsonnet" { print $$2 }' mixin/render/go.mod)
JSONNET_TOOLS   := .build/jsonnet-tools-$(JSONNET_VERSION)
JSONNETFMT      := $(JSONNET_TOOLS)/jsonnetfmt
JSONNET_LINT    := $(JSONNET_TOOLS)/jsonnet-lint

export CGO_ENABLED ?= 0

FUZZTIME ?= 20s

.PHONY: all build run test unit race fuzz heavy e2e bench style vet tidy-check golden rules-check dashboards-check clean

all: style vet test build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) .

# Runs the exporter on this host with its defaults (port 9951). Run it as
# root, or with CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE, to see every
# process's sockets.
run: build
	./$(BIN)

# Everything CI runs: style, vet, module tidiness, unit, golden and live
# tests under the race detector, the rule pack under promtool 2 and 3 and
# vmalert-tool, the mixin (formatted and linted) and the files generated
# from it, the dashboards, the incident replay
# (about 6 minutes of real `for`), the global view over two clusters
# (Thanos), the packages, the image run under runc, the Helm chart, and
# last, alone, the host-limit replay (it lowers host-wide sysctls).
test: style vet tidy-check race fuzz heavy rules-check mixin-check dashboards-check e2e incident fleet-test package-test image-test helm-check docs-check hostlimits-replay

unit:
	$(GO) test -count=1 ./...

# The race detector needs cgo.
race:
	CGO_ENABLED=1 $(GO) test -race -count=1 ./...

# Scrape storms over 100 000 held sockets and hostile cardinality (20 000
# ports); then, under the race detector, the live held-socket test beside
# 42 000 sockets of other processes (half of them in CLOSE_WAIT), as on a
# busy host. About 60 s and 40 s. The figures they log are in
# docs/reliability.md.
heavy:
	TCPSTATE_HEAVY=1 $(GO) test -count=1 -run Heavy -v .
	TCPSTATE_HEAVY=1 CGO_ENABLED=1 $(GO) test -race -count=1 -run '^TestHeldClosedSockets$$' -v ./collector

# The performance report: Go benchmarks on generated tables (1 000 to
# 1 000 000 lines), the netlink library comparison, and real loopback
# sockets (10 000 to 1 000 000) timed against cat, ss -tan, ss -tanp and
# node_exporter's tcpstat (installed from Debian's packages when missing).
# Writes docs/performance.md and docs/performance.png; about 7 minutes.
# Not part of `make test`. BENCH_ARGS go to the benchmark (-h lists them).
bench:
	bench/run.sh $(BENCH_ARGS)

# Each fuzzer for FUZZTIME (the seed corpus from testdata/ runs in every
# `go test`). Run longer with e.g. `make fuzz FUZZTIME=10m`. A failure
# prints the failing input and the command that replays it
# (internal/fuzzreport/fuzz.sh), so that CI's log alone reproduces it.
fuzz:
	GO=$(GO) internal/fuzzreport/fuzz.sh collector/tables $(FUZZTIME) FuzzParseLine
	GO=$(GO) internal/fuzzreport/fuzz.sh collector/owners $(FUZZTIME) FuzzParseSocketLink
	GO=$(GO) internal/fuzzreport/fuzz.sh collector/config $(FUZZTIME) FuzzParseConfig

# The rule pack with Debian's promtool (2.x, installed if missing), with a
# pinned Prometheus 3 promtool built from the Go module proxy, and the same
# tests under a pinned vmalert-tool (VictoriaMetrics' rule unit tester,
# rules/check-vmalert.sh). The builds are slow only the first time: they
# are cached in .build/.
rules-check: $(PROMTOOL3) $(VMALERT_TOOL)
	rules/check.sh
	PROMTOOL=$(PROMTOOL3) rules/check.sh
	GO=$(GO) VMALERT_TOOL=$(VMALERT_TOOL) rules/check-vmalert.sh

$(PROMTOOL3):
	GOBIN=$(abspath $(dir $(PROMTOOL3))) $(GO) install github.com/prometheus/prometheus/cmd/promtool@$(PROMTOOL3_VERSION)

# About 5 minutes the first time on two cores; cached in .build/ after.
$(VMALERT_TOOL):
	GOBIN=$(abspath $(dir $(VMALERT_TOOL))) $(GO) install github.com/VictoriaMetrics/VictoriaMetrics/app/vmalert-tool@$(VMALERT_TOOL_VERSION)

# About 20 s the first time; cached in .build/ after.
$(JSONNETFMT) $(JSONNET_LINT) &:
	@test -n '$(JSONNET_VERSION)' || { echo "no github.com/google/go-jsonnet in mixin/render/go.mod" >&2; exit 1; }
	GOBIN=$(abspath $(JSONNET_TOOLS)) $(GO) install github.com/google/go-jsonnet/cmd/jsonnetfmt@$(JSONNET_VERSION)
	GOBIN=$(abspath $(JSONNET_TOOLS)) $(GO) install github.com/google/go-jsonnet/cmd/jsonnet-lint@$(JSONNET_VERSION)

# --- Monitoring mixin (mixin/) ----------------------------------------------
# The mixin is the source of the rule pack and the dashboards. `make mixin`
# renders rules/tcpstate_exporter.rules.yml and dashboards/*.json from it
# with go-jsonnet (mixin/render, its own module), then the PrometheusRule
# and the Helm chart's copy from the rule file. RUNBOOK_URL_BASE points
# every runbook link (rules and dashboards) at a site's own copy of
# docs/runbooks.md, and MIXIN_CONFIG is a jsonnet object merged into the
# mixin's _config, e.g.
#   make mixin RUNBOOK_URL_BASE=https://wiki.example/runbooks.md
#   make mixin MIXIN_CONFIG="{ showMultiCluster: true, tcpstateSelector: 'job=\"tcpstate\"' }"
# (for a site's build only: the checked-in files use the mixin's defaults,
# and `make mixin-check` fails on anything else).
RUNBOOK_URL_BASE ?=
MIXIN_CONFIG     ?=
MIXIN_RENDER = $(GO) -C mixin/render run . -mixin $(abspath mixin)
MIXIN_SITE   = $(if $(RUNBOOK_URL_BASE),-runbook-url-base '$(RUNBOOK_URL_BASE)') $(if $(MIXIN_CONFIG),-config '$(MIXIN_CONFIG)')

.PHONY: mixin mixin-check mixin-lint mixin-fmt
mixin:
	$(MIXIN_RENDER) $(MIXIN_SITE) -o $(abspath rules/tcpstate_exporter.rules.yml)
	@echo "mixin: wrote rules/tcpstate_exporter.rules.yml"
	$(MIXIN_RENDER) $(MIXIN_SITE) -dashboards $(abspath dashboards)
	@echo "mixin: wrote dashboards/*.json"
	$(MAKE) --no-print-directory prometheusrule helm-rules

# Every file generated from the mixin is what it renders with its defaults,
# and the renderer's tests pass: the YAML reads back as the mixin, the
# _config knobs reach the rules (promtool 2 and 3 check a site's
# rendering), the dashboards render to the files in dashboards/.
mixin-check: $(PROMTOOL3) mixin-lint
	cd mixin/render && $(GO) vet ./... && PROMTOOLS=promtool:$(abspath $(PROMTOOL3)) $(GO) test -count=1 ./...
	@$(MIXIN_RENDER) | diff -u --label 'rules/tcpstate_exporter.rules.yml (committed)' \
		--label 'rules/tcpstate_exporter.rules.yml (rendered from mixin/)' rules/tcpstate_exporter.rules.yml - \
		|| { echo "mixin-check: rules/tcpstate_exporter.rules.yml is stale: run \`make mixin\` and commit the result" >&2; exit 1; }
	@echo "mixin-check: rules/tcpstate_exporter.rules.yml matches mixin/"
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(MIXIN_RENDER) -dashboards "$$tmp" || exit 1; \
	diff -ru --exclude validate "$$tmp" dashboards \
		|| { echo "mixin-check: dashboards/ differs from what mixin/ renders: run \`make mixin\` and commit the result" >&2; exit 1; }
	@echo "mixin-check: dashboards/*.json match mixin/"
	packaging/kubernetes/generate-prometheusrule.sh --check
	packaging/helm/generate-rules.sh --check

# Every jsonnet file of the mixin is as jsonnetfmt writes it (with the
# options node-mixin and kubernetes-mixin use) and jsonnet-lint finds
# nothing in it; a file jsonnetfmt would change fails with the diff, and
# `make mixin-fmt` rewrites it. The tools are go-jsonnet's, built at the
# version mixin/render/go.mod pins.
JSONNET_FMT_ARGS := -n 2 --max-blank-lines 2 --string-style s --comment-style s
JSONNET_FILES     = $(shell find mixin \( -name '*.jsonnet' -o -name '*.libsonnet' \) -type f | LC_ALL=C sort)

mixin-lint: $(JSONNETFMT) $(JSONNET_LINT)
	@fail=0; \
	for f in $(JSONNET_FILES); do \
		$(JSONNETFMT) $(JSONNET_FMT_ARGS) "$$f" | diff -u --label "$$f" --label "$$f (jsonnetfmt)" "$$f" - \
			|| { echo "mixin-lint: $$f is not as jsonnetfmt writes it: run \`make mixin-fmt\`" >&2; fail=1; }; \
		$(JSONNET_LINT) "$$f" || { echo "mixin-lint: jsonnet-lint: problems in $$f" >&2; fail=1; }; \
	done; \
	[ $$fail -eq 0 ] && echo "mixin-lint: jsonnetfmt and jsonnet-lint clean ($(words $(JSONNET_FILES)) files)"

mixin-fmt: $(JSONNETFMT)
	$(JSONNETFMT) $(JSONNET_FMT_ARGS) -i $(JSONNET_FILES)

# The dashboards: strict schema validation, unique panel ids, defined
# variables, and every metric they query present in the golden exposition.
# -count=1: the files checked live outside the test module, so Go's test
# cache would not notice a change to them.
dashboards-check:
	cd dashboards/validate && $(GO) test -count=1 ./...

style:
	@out=$$(gofmt -l $$(if [ -e .git ]; then git ls-files '*.go'; else find . -name '*.go'; fi)); \
	if [ -n "$$out" ]; then echo "gofmt wants to change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

tidy-check:
	@cp go.mod /tmp/tcpstate.go.mod.bak; cp go.sum /tmp/tcpstate.go.sum.bak; \
	$(GO) mod tidy; \
	if ! cmp -s go.mod /tmp/tcpstate.go.mod.bak || ! cmp -s go.sum /tmp/tcpstate.go.sum.bak; then \
		echo "go mod tidy changes go.mod or go.sum: run it and commit the result"; \
		cp /tmp/tcpstate.go.mod.bak go.mod; cp /tmp/tcpstate.go.sum.bak go.sum; exit 1; fi

# The command blocks of README.md and docs/*.md (```sh, bash, shell,
# console), as written: as root, in a copy of the tracked files, each in its
# own PID and network namespace (loopback only) and bounded in time; a block
# marked <!-- not-run: REASON --> is skipped, one marked <!-- serves: URL -->
# passes when URL answers. Last in `make test`: the builds it runs (make
# release, go run .) are then cached. See internal/docblocks.
.PHONY: docs-check
docs-check:
	TCPSTATE_DOCBLOCKS=1 $(GO) test -count=1 -v -timeout 30m -run '^TestRun$$' ./internal/docblocks/

# Regenerates testdata/e2e-output.txt from the binary run against the
# fixture tree in testdata/proc. Review the diff like code.
golden:
	$(GO) test -count=1 -run TestGoldenExposition . -update

clean:
	rm -rf $(BIN) dist .build/packages .build/release

# End to end: the exporter holds real CLOSE_WAIT sockets on loopback, a
# Prometheus and an Alertmanager started by the test (Debian's packages,
# installed here when missing; needs root then) scrape it, evaluate the rule
# pack and deliver TCPStatePoolExhausted to a webhook in the test, and every
# dashboard query runs against that Prometheus. About 15 s.
E2E_PACKAGES := prometheus prometheus-alertmanager

e2e:
	@missing=; \
	for p in $(E2E_PACKAGES); do command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" -ne 0 ]; then \
			echo "e2e: missing$$missing; install them (apt-get install -y$$missing) or run as root" >&2; exit 1; fi; \
		echo "e2e: installing$$missing from Debian's packages"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -qq $$missing >/dev/null || { apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; } || exit 1; \
		for p in $$missing; do command -v $$p >/dev/null 2>&1 || { echo "e2e: $$p still missing after apt-get install" >&2; exit 1; }; done; \
	fi
	TCPSTATE_E2E=1 $(GO) test -count=1 -v ./e2e/


# --- The global view (e2e/fleet_test.go, docs/rules.md) ---------------------
# Two clusters, each a network namespace with its own exporter, Go net/http
# client (eu's leaks its pool, us's is healthy), Prometheus (eu: an HA
# pair) with external_labels {cluster: eu|us} and an instance label that
# collides, and a Thanos sidecar beside each; on the host's loopback
# Thanos Query over the sidecars and the Ruler, and Thanos Ruler
# evaluating the rule pack rendered from the mixin with the multi-cluster
# _config (every `for` 4s) against Query, sending to a real Alertmanager.
# The leak must page once, labelled cluster="eu" with eu's numbers; us
# raises nothing; every query of the dashboards rendered with
# showMultiCluster returns, with the cluster variable on eu, eu's series
# only; when us's sidecar goes away, eu's page stays up. About a minute; the first run also builds Thanos (about 4 minutes on 2 cores with
# the modules downloaded, cached in .build/). Installs Prometheus and
# Alertmanager when missing (as root).
FLEET_PACKAGES := prometheus prometheus-alertmanager

.PHONY: fleet-test
fleet-test: $(THANOS)
	@missing=; \
	for p in $(FLEET_PACKAGES); do [ "$$(dpkg-query -W -f='$${Status}' $$p 2>&1)" = "install ok installed" ] || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" -ne 0 ]; then \
			echo "fleet-test: missing$$missing; install them (apt-get install -y$$missing) or run as root" >&2; exit 1; fi; \
		echo "fleet-test: installing$$missing from Debian's packages"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -qq $$missing >/dev/null || { apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; } || exit 1; \
	fi
	TCPSTATE_FLEET=1 TCPSTATE_THANOS=$(abspath $(THANOS)) \
		$(GO) test -count=1 -v -timeout 10m -run '^TestFleet$$' ./e2e/

$(THANOS):
	GO=$(GO) THANOS_GOTOOLCHAIN=$(THANOS_GOTOOLCHAIN) e2e/fleet/build-thanos.sh $(THANOS_VERSION) $(THANOS)


# --- Packaging (packaging/, docs/install.md) --------------------------------
NFPM_VERSION := v2.45.2
NFPM         := .build/nfpm-$(NFPM_VERSION)/nfpm

.PHONY: package release package-test prometheusrule

$(NFPM):
	GOBIN=$(abspath $(dir $(NFPM))) $(GO) install github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)

# .deb and .rpm for linux/amd64 and linux/arm64 in dist/.
package: $(NFPM)
	NFPM=$(abspath $(NFPM)) LDFLAGS='$(LDFLAGS)' packaging/build-packages.sh

# Tarballs for linux/amd64 and linux/arm64 and their SHA-256 sums in dist/,
# built offline (the modules must be in the module cache).
release:
	LDFLAGS='$(LDFLAGS)' packaging/build-release.sh

# The packaging checks, as root: package contents, lintian, the unit
# (systemd-analyze verify and security), install/remove in throwaway roots,
# the Kubernetes manifests, least privilege, and the package under a booted
# systemd in a container (SKIP_SYSTEMD_BOOT=1 skips that part).
package-test: $(NFPM)
	NFPM=$(abspath $(NFPM)) LDFLAGS='$(LDFLAGS)' packaging/test.sh

# Regenerates packaging/kubernetes/prometheusrule.yaml from the rule pack
# (`make mixin` runs it).
prometheusrule:
	packaging/kubernetes/generate-prometheusrule.sh


# --- Container image and Helm chart (packaging/container, packaging/helm) ---
IMAGE_NAME  := ghcr.io/tcpstate-exporter/tcpstate_exporter
IMAGE       := dist/tcpstate_exporter-$(VERSION).oci.tar

HELM_VERSION := v3.19.0
HELM         := .build/helm-$(HELM_VERSION)/helm

.PHONY: image image-test helm-check helm-rules

# The image as an OCI archive, linux/amd64 and linux/arm64 in one index
# tagged vVERSION, built without a daemon or a base image; push it with
# `skopeo copy --all oci-archive:$(IMAGE) docker://REGISTRY/NAME:vVERSION`.
image:
	IMAGE_NAME=$(IMAGE_NAME) OUT=$(IMAGE) LDFLAGS='$(LDFLAGS)' packaging/container/build-image.sh

# The image as a node runs it (as root: installs skopeo, umoci and runc if
# missing, and starts containers with runc): both architectures carry the
# file capabilities and nothing else; the host architecture's image, run
# non-root with host PID and network namespaces, the host's /proc at
# /host/proc and a read-only root, attributes a root process's CLOSE_WAIT
# sockets, and counts them unresolved, with the one warning, when the
# runtime withholds the capabilities or the binary lost its file
# capabilities.
image-test: image
	packaging/container/test-image.sh $(IMAGE)

# About 10 minutes the first time on two cores; cached in .build/ after.
$(HELM):
	GOBIN=$(abspath $(dir $(HELM))) $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

# The Helm chart: its copy of the rule pack is current, `helm lint --strict`
# with the defaults and with everything enabled, and the rendered objects
# (`helm template`, in packaging/kubernetes/validate) pass the checks the
# manifests pass. -count=1: the chart lives outside the test module.
helm-check: $(HELM)
	packaging/helm/generate-rules.sh --check
	$(HELM) lint --strict packaging/helm/tcpstate-exporter
	$(HELM) lint --strict packaging/helm/tcpstate-exporter --set serviceMonitor.enabled=true,prometheusRule.enabled=true
	cd packaging/kubernetes/validate && HELM=$(abspath $(HELM)) $(GO) test -count=1 -run Helm ./...

# Regenerates the chart's copy of the rule pack (`make mixin` runs it).
helm-rules:
	packaging/helm/generate-rules.sh

# --- Incident replay (e2e/incident_test.go, docs/incident.md) ---------------
# Three real clients leak their pools against a loopback keep-alive server:
# Apache HttpClient 4.5 (Debian's libhttpclient-java on default-jdk-headless),
# Python requests (Debian's python3 and python3-requests) and Go net/http. The
# exporter, a Prometheus with the shipped rule file (unchanged: the page waits
# its real `for`) and an Alertmanager must page within 3 minutes of each pool
# running dry; then each program with the runbook's fix must keep CLOSE_WAIT
# from accumulating. In parallel, TestIncidentPortsAndBacklog exhausts the
# ephemeral ports of a network namespace with Python requests and fills a
# listener's accept queue, each alert checked against the real failure
# (about 3 minutes, within the same wall time); and TestIncidentFds runs
# Python requests with a Session per request, never closed, under
# `prlimit --nofile=256` until its first EMFILE: TCPStateProcessFdsExhausting
# must reach Alertmanager before it, TCPStateProcessFdsExhausted page within
# 3 minutes of the limit, and the one-Session fix stay quiet (about 6
# minutes: the warning's `for` at 1m through the mixin's _config, the
# page's shipped 2m). About 6 minutes in all.
# Installs the packages when missing (as root). INCIDENT_PLOT=docs/incident.png also draws the Java client's
# timeline from the replay's Prometheus.
INCIDENT_PACKAGES := prometheus prometheus-alertmanager default-jdk-headless libhttpclient-java python3-requests
INCIDENT_PLOT ?=

# --- Host-limits replay (e2e/hostlimits_replay_test.go, docs/incident.md) ---
# Drives the host's shared TCP limits for real: a listener that drops, a
# writer toward a server that stopped reading with net.ipv4.tcp_mem lowered
# until the kernel reports pressure and memory reaches max, orphans toward
# it with net.ipv4.tcp_max_orphans lowered until the kernel resets them;
# each alert (shipped rules, `for:` shortened) checked against the kernel.
# THESE SYSCTLS ARE HOST-WIDE: the step lowers each only for the seconds it
# needs and restores it on every exit path (the step, t.Cleanup, a
# SIGINT/SIGTERM handler, a guard process that outlives a killed test), but
# while they are low every process on the machine shares them. So this
# target runs alone and serially: never with `make -j`, never beside other
# tests (it is the last prerequisite of `make test`, after every other).
# About a minute. Needs root; installs Prometheus and Alertmanager when missing.
HOSTLIMITS_PACKAGES := prometheus prometheus-alertmanager python3

.PHONY: hostlimits-replay
hostlimits-replay:
	@missing=; \
	for p in $(HOSTLIMITS_PACKAGES); do [ "$$(dpkg-query -W -f='$${Status}' $$p 2>&1)" = "install ok installed" ] || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" -ne 0 ]; then \
			echo "hostlimits-replay: missing$$missing; install them (apt-get install -y$$missing) or run as root" >&2; exit 1; fi; \
		echo "hostlimits-replay: installing$$missing from Debian's packages"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -qq $$missing >/dev/null || { apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; } || exit 1; \
	fi
	TCPSTATE_HOSTLIMITS=1 $(GO) test -count=1 -v -timeout 6m -run '^TestHostLimitsReplay$$' ./e2e/

.PHONY: incident
incident:
	@missing=; \
	for p in $(INCIDENT_PACKAGES); do [ "$$(dpkg-query -W -f='$${Status}' $$p 2>&1)" = "install ok installed" ] || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" -ne 0 ]; then \
			echo "incident: missing$$missing; install them (apt-get install -y$$missing) or run as root" >&2; exit 1; fi; \
		echo "incident: installing$$missing from Debian's packages"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -qq $$missing >/dev/null || { apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; } || exit 1; \
	fi
	TCPSTATE_INCIDENT=1 $(if $(INCIDENT_PLOT),TCPSTATE_INCIDENT_PLOT=$(abspath $(INCIDENT_PLOT))) \
		$(GO) test -count=1 -v -timeout 20m -parallel 6 -run '^TestIncident' ./e2e/
