// Package validate checks the Kubernetes manifests in packaging/kubernetes
// without a cluster: each file is decoded strictly into its typed API object
// (unknown or misspelt fields and wrong types are errors), and the settings
// the exporter depends on are asserted: host PID and network namespaces,
// the host's /proc at /host/proc, exactly two capabilities, a non-root
// user, a read-only root file system, limits and probes, selectors that
// match, the pool config accepted by the exporter's own parser, and a
// PrometheusRule whose spec equals rules/tcpstate_exporter.rules.yml. The
// Helm chart in packaging/helm/tcpstate-exporter, rendered by `helm
// template`, gets the same checks (helm_test.go; skipped unless HELM names
// a helm binary, as `make helm-check` does).
//
// It is a module of its own so the exporter's go.mod never needs the
// Kubernetes API packages. Run it with
// `cd packaging/kubernetes/validate && go test -count=1 ./...`
// (-count=1: the manifests live outside this module, so Go's test cache
// would not notice a change to them).
package validate

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/config"
)

const (
	dir       = ".."
	repo      = "../../.."
	namespace = "tcpstate-exporter"
)

// decode reads a manifest strictly into obj, the way the API server's
// strict field validation does: field names are case-sensitive (Go's
// encoding/json is not, so "readOnlyRootFileSystem" would pass it), and
// unknown or duplicate fields are errors.
func decode(t *testing.T, file string, obj any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	if err := unmarshalStrict(data, obj); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

func unmarshalStrict(data []byte, obj any) error {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(js, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

func version(t *testing.T) string {
	t.Helper()
	v, err := os.ReadFile(filepath.Join(repo, "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(v))
}

func loadDaemonSet(t *testing.T) *appsv1.DaemonSet {
	var ds appsv1.DaemonSet
	decode(t, "daemonset.yaml", &ds)
	if ds.Kind != "DaemonSet" || ds.APIVersion != "apps/v1" {
		t.Fatalf("daemonset.yaml: kind %q apiVersion %q", ds.Kind, ds.APIVersion)
	}
	if len(ds.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("daemonset.yaml: want one container, have %d", len(ds.Spec.Template.Spec.Containers))
	}
	return &ds
}

func TestDaemonSet(t *testing.T) {
	t.Parallel()
	checkDaemonSet(t, loadDaemonSet(t), "tcpstate-exporter-config")
}

// checkDaemonSet asserts what the exporter needs of its pod, in the
// manifest and in the Helm chart's rendering: host namespaces, the host's
// /proc, the config from the ConfigMap named configMap, the security
// context, resources, probes, and image and labels following VERSION.
func checkDaemonSet(t *testing.T, ds *appsv1.DaemonSet, configMap string) {
	t.Helper()
	pod := ds.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, have %d", len(pod.Containers))
	}
	c := pod.Containers[0]

	if ds.Namespace != namespace {
		t.Errorf("namespace %q, want %q", ds.Namespace, namespace)
	}
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	if !sel.Matches(labels.Set(ds.Spec.Template.Labels)) {
		t.Errorf("selector %v does not match the pod labels %v", sel, ds.Spec.Template.Labels)
	}
	// /proc/net is /proc/self/net: only the host's network namespace shows
	// the host's sockets; only the host's PID namespace shows its processes.
	if !pod.HostNetwork || !pod.HostPID {
		t.Errorf("hostNetwork=%v hostPID=%v, both must be true", pod.HostNetwork, pod.HostPID)
	}
	if pod.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Errorf("dnsPolicy %q, want ClusterFirstWithHostNet with hostNetwork", pod.DNSPolicy)
	}
	if !slices.Contains(c.Args, "--path.procfs=/host/proc") {
		t.Errorf("args %q lack --path.procfs=/host/proc", c.Args)
	}
	if !slices.Contains(c.Args, "--config.file=/etc/tcpstate_exporter/config.yml") {
		t.Errorf("args %q lack --config.file=/etc/tcpstate_exporter/config.yml", c.Args)
	}

	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	proc, ok := mounts["/host/proc"]
	if !ok || !proc.ReadOnly {
		t.Errorf("/host/proc must be mounted read-only: %+v", proc)
	} else if v := volumes[proc.Name]; v.HostPath == nil || v.HostPath.Path != "/proc" {
		t.Errorf("volume %q for /host/proc must be hostPath /proc: %+v", proc.Name, v)
	}
	cfg, ok := mounts["/etc/tcpstate_exporter"]
	if !ok || !cfg.ReadOnly {
		t.Errorf("/etc/tcpstate_exporter must be mounted read-only: %+v", cfg)
	} else if v := volumes[cfg.Name]; v.ConfigMap == nil || v.ConfigMap.Name != configMap {
		t.Errorf("volume %q must be the ConfigMap %s: %+v", cfg.Name, configMap, v)
	}

	psc, sc := pod.SecurityContext, c.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("pod must run as a fixed non-root uid: %+v", psc)
	}
	if sc == nil || sc.Capabilities == nil {
		t.Fatal("container securityContext.capabilities missing")
	}
	if !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("capabilities.drop %v, want [ALL]", sc.Capabilities.Drop)
	}
	add := slices.Clone(sc.Capabilities.Add)
	slices.Sort(add)
	if !reflect.DeepEqual(add, []corev1.Capability{"DAC_READ_SEARCH", "SYS_PTRACE"}) {
		t.Errorf("capabilities.add %v, want exactly DAC_READ_SEARCH and SYS_PTRACE", add)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem must be true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation must be false")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Error("privileged must not be true")
	}

	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, lim := c.Resources.Requests[res], c.Resources.Limits[res]
		if req.IsZero() || lim.IsZero() {
			t.Errorf("%s: request %v and limit %v must both be set", res, req.String(), lim.String())
		} else if req.Cmp(lim) > 0 {
			t.Errorf("%s: request %v above limit %v", res, req.String(), lim.String())
		}
	}
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s probe must be an HTTP GET", name)
			continue
		}
		if p.HTTPGet.Path != "/" && p.HTTPGet.Path != "/metrics" {
			t.Errorf("%s probe path %q, want / or /metrics", name, p.HTTPGet.Path)
		}
		if p.HTTPGet.Port.String() != "metrics" {
			t.Errorf("%s probe port %q, want the named port metrics", name, p.HTTPGet.Port.String())
		}
	}
	if len(c.Ports) != 1 || c.Ports[0].Name != "metrics" || c.Ports[0].ContainerPort != 9951 {
		t.Errorf("ports %+v, want one named metrics on 9951", c.Ports)
	}

	v := version(t)
	if !strings.HasSuffix(c.Image, ":v"+v) {
		t.Errorf("image %q is not tagged v%s (the VERSION file)", c.Image, v)
	}
	for where, l := range map[string]map[string]string{"metadata": ds.Labels, "pod template": ds.Spec.Template.Labels} {
		if got := l["app.kubernetes.io/version"]; got != v {
			t.Errorf("%s label app.kubernetes.io/version %q, want %q (the VERSION file)", where, got, v)
		}
	}
}

// Both shipped pool configs, the ConfigMap's and the packages'
// /etc/tcpstate_exporter/config.yml, load as they are (no pools) and with
// their indented, commented example uncommented (one pool).
func TestPoolConfigs(t *testing.T) {
	t.Parallel()
	var cm corev1.ConfigMap
	decode(t, "configmap.yaml", &cm)
	fromConfigMap, ok := cm.Data["config.yml"]
	if !ok {
		t.Fatal("configmap.yaml: no config.yml key")
	}
	packaged, err := os.ReadFile(filepath.Join(repo, "packaging/config.yml"))
	if err != nil {
		t.Fatal(err)
	}
	commented := regexp.MustCompile(`(?m)^(\s+)# `)
	for name, text := range map[string]string{"configmap.yaml config.yml": fromConfigMap, "packaging/config.yml": string(packaged)} {
		checkPoolConfig(t, name+" as shipped", text, 0)
		checkPoolConfig(t, name+" with the example uncommented", commented.ReplaceAllString(text, "$1"), 1)
	}
}

// checkPoolConfig loads a pool config with the exporter's own parser and
// expects it to declare pools pools.
func checkPoolConfig(t *testing.T, name, text string, pools int) {
	t.Helper()
	cfg, err := config.ParseConfig([]byte(text))
	if err != nil {
		t.Errorf("%s: %v\n%s", name, err, text)
	} else if len(cfg.Pools) != pools {
		t.Errorf("%s declares %d pools, want %d", name, len(cfg.Pools), pools)
	}
}

func TestServiceAndServiceMonitorSelectTheDaemonSet(t *testing.T) {
	t.Parallel()
	ds := loadDaemonSet(t)
	var svc corev1.Service
	decode(t, "service.yaml", &svc)
	var sm monitoringv1.ServiceMonitor
	decode(t, "servicemonitor.yaml", &sm)
	checkServiceAndMonitor(t, ds, &svc, &sm)
}

// checkServiceAndMonitor asserts that the Service selects the DaemonSet's
// pods on the named port metrics, and the ServiceMonitor that Service.
func checkServiceAndMonitor(t *testing.T, ds *appsv1.DaemonSet, svc *corev1.Service, sm *monitoringv1.ServiceMonitor) {
	t.Helper()
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(ds.Spec.Template.Labels)) {
		t.Errorf("Service selector %v does not match the pods %v", svc.Spec.Selector, ds.Spec.Template.Labels)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "metrics" || svc.Spec.Ports[0].TargetPort.String() != "metrics" {
		t.Errorf("Service ports %+v, want one named metrics targeting the named port metrics", svc.Spec.Ports)
	}
	smSel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	if !smSel.Matches(labels.Set(svc.Labels)) {
		t.Errorf("ServiceMonitor selector %v does not match the Service labels %v", sm.Spec.Selector.MatchLabels, svc.Labels)
	}
	if !slices.Contains(sm.Spec.NamespaceSelector.MatchNames, svc.Namespace) {
		t.Errorf("ServiceMonitor namespaceSelector %v misses %q", sm.Spec.NamespaceSelector.MatchNames, svc.Namespace)
	}
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "metrics" {
		t.Errorf("ServiceMonitor endpoints %+v, want one on port metrics", sm.Spec.Endpoints)
	}
	for _, o := range []struct{ kind, ns string }{{"Service", svc.Namespace}, {"ServiceMonitor", sm.Namespace}} {
		if o.ns != namespace {
			t.Errorf("%s: namespace %q, want %q", o.kind, o.ns, namespace)
		}
	}
}

func TestNamespaceAllowsHostAccess(t *testing.T) {
	t.Parallel()
	var ns corev1.Namespace
	decode(t, "namespace.yaml", &ns)
	if ns.Name != namespace {
		t.Errorf("namespace %q, want %q", ns.Name, namespace)
	}
	if got := ns.Labels["pod-security.kubernetes.io/enforce"]; got != "privileged" {
		t.Errorf("pod-security.kubernetes.io/enforce=%q: hostPID, hostNetwork and hostPath need privileged", got)
	}
}

// The PrometheusRule's spec must be the rule pack, field for field.
func TestPrometheusRuleMatchesTheRulePack(t *testing.T) {
	t.Parallel()
	var pr monitoringv1.PrometheusRule
	decode(t, "prometheusrule.yaml", &pr)
	checkPrometheusRule(t, &pr, "make prometheusrule")
}

// checkPrometheusRule asserts that the object's spec is the rule pack,
// field for field; regenerate names the make target that fixes a drift.
func checkPrometheusRule(t *testing.T, pr *monitoringv1.PrometheusRule, regenerate string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repo, "rules/tcpstate_exporter.rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var spec monitoringv1.PrometheusRuleSpec
	if err := unmarshalStrict(data, &spec); err != nil {
		t.Fatalf("rules/tcpstate_exporter.rules.yml as a PrometheusRule spec: %v", err)
	}
	if len(spec.Groups) == 0 {
		t.Fatal("the rule pack has no groups")
	}
	if !reflect.DeepEqual(pr.Spec, spec) {
		t.Errorf("PrometheusRule %s: spec differs from rules/tcpstate_exporter.rules.yml: run `%s`", pr.Name, regenerate)
	}
	if pr.Namespace != namespace {
		t.Errorf("namespace %q, want %q", pr.Namespace, namespace)
	}
}

// kustomization.yaml lists every manifest in the folder.
func TestKustomizationListsEveryManifest(t *testing.T) {
	t.Parallel()
	var k struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
	}
	decode(t, "kustomization.yaml", &k)
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" {
			want = append(want, b)
		}
	}
	got := slices.Clone(k.Resources)
	slices.Sort(got)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("kustomization resources %v, want %v", got, want)
	}
}

// TestLimitsAgree: the DaemonSet, the Helm chart's defaults and the systemd
// unit carry the same limits, those of the sizing table in docs/install.md
// (make bench measures a scrape under the DaemonSet's, read from the file).
func TestLimitsAgree(t *testing.T) {
	ds := loadDaemonSet(t)
	res := ds.Spec.Template.Spec.Containers[0].Resources
	var values struct {
		Resources corev1.ResourceRequirements `json:"resources"`
	}
	data, err := os.ReadFile(filepath.Join(repo, "packaging/helm/tcpstate-exporter/values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &values); err != nil {
		t.Fatalf("values.yaml: %v", err)
	}
	if !reflect.DeepEqual(values.Resources, res) {
		t.Errorf("the Helm chart's resources %+v differ from the DaemonSet's %+v", values.Resources, res)
	}
	unit, err := os.ReadFile(filepath.Join(repo, "packaging/systemd/tcpstate_exporter.service"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^MemoryMax=(\d+)M$`).FindSubmatch(unit)
	if m == nil {
		t.Fatal("the systemd unit has no MemoryMax=NM")
	}
	limit := res.Limits[corev1.ResourceMemory]
	if got, want := string(m[1])+"Mi", limit.String(); got != want {
		t.Errorf("the unit's MemoryMax=%sM differs from the DaemonSet's memory limit %s (systemd's M is a MiB)", m[1], want)
	}
	install, err := os.ReadFile(filepath.Join(repo, "docs/install.md"))
	if err != nil {
		t.Fatal(err)
	}
	cpu := res.Limits[corev1.ResourceCPU]
	for _, want := range []string{"## Sizing", "memory limit " + limit.String(), "CPU limit " + cpu.String()} {
		if !strings.Contains(string(install), want) {
			t.Errorf("docs/install.md lacks %q", want)
		}
	}
}
