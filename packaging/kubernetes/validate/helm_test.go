package validate

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// The Helm chart, rendered by `helm template` (the binary in $HELM; `make
// helm-check` builds the pinned version and sets it), gets the checks the
// manifests get: the same decoding, strict, into the API types, and the
// same assertions on the DaemonSet, Service, ServiceMonitor,
// PrometheusRule and pool config.

const chart = "../../helm/tcpstate-exporter"

// rendered is one `helm template` output, decoded by kind.
type rendered struct {
	kinds     []string
	configMap *corev1.ConfigMap
	daemonSet *appsv1.DaemonSet
	service   *corev1.Service
	monitor   *monitoringv1.ServiceMonitor
	rule      *monitoringv1.PrometheusRule
}

func render(t *testing.T, args ...string) rendered {
	t.Helper()
	helm := os.Getenv("HELM")
	if helm == "" {
		t.Skip("HELM is not set; `make helm-check` runs this with the pinned Helm")
	}
	cmd := exec.Command(helm, append([]string{"template", "tcpstate-exporter", chart, "--namespace", namespace}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var r rendered
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(out), -1) {
		var head struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("rendered document: %v\n%s", err, doc)
		}
		if head.Kind == "" {
			continue // only comments
		}
		r.kinds = append(r.kinds, head.Kind)
		var obj any
		switch head.Kind {
		case "ConfigMap":
			r.configMap = &corev1.ConfigMap{}
			obj = r.configMap
		case "DaemonSet":
			r.daemonSet = &appsv1.DaemonSet{}
			obj = r.daemonSet
		case "Service":
			r.service = &corev1.Service{}
			obj = r.service
		case "ServiceMonitor":
			r.monitor = &monitoringv1.ServiceMonitor{}
			obj = r.monitor
		case "PrometheusRule":
			r.rule = &monitoringv1.PrometheusRule{}
			obj = r.rule
		default:
			t.Fatalf("the chart renders a %s, which this test does not check", head.Kind)
		}
		if err := unmarshalStrict([]byte(doc), obj); err != nil {
			t.Fatalf("rendered %s: %v\n%s", head.Kind, err, doc)
		}
	}
	slices.Sort(r.kinds)
	return r
}

func (r rendered) config(t *testing.T) string {
	t.Helper()
	if r.configMap == nil {
		t.Fatal("no ConfigMap rendered")
	}
	text, ok := r.configMap.Data["config.yml"]
	if !ok {
		t.Fatalf("ConfigMap %s has no config.yml", r.configMap.Name)
	}
	return text
}

// With the defaults: the DaemonSet, its ConfigMap (no pools) and the
// Service, nothing that needs the Prometheus Operator's CRDs.
func TestHelmChartDefaults(t *testing.T) {
	t.Parallel()
	r := render(t)
	if want := []string{"ConfigMap", "DaemonSet", "Service"}; !slices.Equal(r.kinds, want) {
		t.Fatalf("rendered %v, want %v", r.kinds, want)
	}
	checkDaemonSet(t, r.daemonSet, r.configMap.Name)
	checkPoolConfig(t, "the chart's config.yml", r.config(t), 0)
	for _, o := range []struct{ kind, ns string }{{"ConfigMap", r.configMap.Namespace}, {"DaemonSet", r.daemonSet.Namespace}, {"Service", r.service.Namespace}} {
		if o.ns != namespace {
			t.Errorf("%s: namespace %q, want %q (the release's)", o.kind, o.ns, namespace)
		}
	}
}

// With everything on and every value the chart documents set.
func TestHelmChartWithValues(t *testing.T) {
	t.Parallel()
	r := render(t,
		"--set", "serviceMonitor.enabled=true,prometheusRule.enabled=true",
		"--set", "serviceMonitor.additionalLabels.release=kube-prometheus-stack,prometheusRule.additionalLabels.release=kube-prometheus-stack",
		"--set", "image.repository=registry.example/tcpstate_exporter,image.tag=test",
		"--set", "resources.limits.memory=256Mi,nodeSelector.pool=edge",
		"--set-json", `tolerations=[{"key":"dedicated","operator":"Equal","value":"edge","effect":"NoSchedule"}]`,
		"--set-json", `args=["--collector.max-series=500"]`,
		"--set-json", `pools=[{"name":"search","process":"^java$","remote_address":"10.1.2.0/24","remote_port":9000,"max":400},{"name":"db","remote_port":5432,"max":20}]`,
	)
	if want := []string{"ConfigMap", "DaemonSet", "PrometheusRule", "Service", "ServiceMonitor"}; !slices.Equal(r.kinds, want) {
		t.Fatalf("rendered %v, want %v", r.kinds, want)
	}
	// The image tag is the value's, so checkDaemonSet's tag check would
	// fail: check it here and the rest there with the default tag.
	c := r.daemonSet.Spec.Template.Spec.Containers[0]
	if c.Image != "registry.example/tcpstate_exporter:test" {
		t.Errorf("image %q, want registry.example/tcpstate_exporter:test", c.Image)
	}
	c.Image = "ghcr.io/tcpstate-exporter/tcpstate_exporter:v" + version(t)
	r.daemonSet.Spec.Template.Spec.Containers[0] = c
	checkDaemonSet(t, r.daemonSet, r.configMap.Name)
	checkServiceAndMonitor(t, r.daemonSet, r.service, r.monitor)
	checkPrometheusRule(t, r.rule, "make helm-rules")
	checkPoolConfig(t, "the chart's config.yml with two pools", r.config(t), 2)

	pod := r.daemonSet.Spec.Template.Spec
	if !slices.Contains(c.Args, "--collector.max-series=500") {
		t.Errorf("args %q lack the extra --collector.max-series=500", c.Args)
	}
	if got := c.Resources.Limits[corev1.ResourceMemory]; got.String() != "256Mi" {
		t.Errorf("memory limit %s, want 256Mi", got.String())
	}
	if pod.NodeSelector["pool"] != "edge" || len(pod.Tolerations) != 1 || pod.Tolerations[0].Key != "dedicated" {
		t.Errorf("nodeSelector %v, tolerations %+v: not the values'", pod.NodeSelector, pod.Tolerations)
	}
	for kind, l := range map[string]map[string]string{"ServiceMonitor": r.monitor.Labels, "PrometheusRule": r.rule.Labels} {
		if l["release"] != "kube-prometheus-stack" {
			t.Errorf("%s labels %v lack additionalLabels' release", kind, l)
		}
	}
}

// A change of the pools changes the pod template (its checksum
// annotation), so `helm upgrade` rolls the pods and they read the new
// config; the same pools leave it alone.
func TestHelmConfigChangeRollsThePods(t *testing.T) {
	t.Parallel()
	checksum := func(pools string) string {
		r := render(t, "--set-json", "pools="+pools)
		sum := r.daemonSet.Spec.Template.Annotations["checksum/config"]
		if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(sum) {
			t.Fatalf("checksum/config annotation %q is not a SHA-256", sum)
		}
		return sum
	}
	a := checksum(`[{"name":"db","remote_port":5432,"max":20}]`)
	b := checksum(`[{"name":"db","remote_port":5432,"max":30}]`)
	again := checksum(`[{"name":"db","remote_port":5432,"max":20}]`)
	if a == b {
		t.Error("the pod template's checksum/config did not change with the pools")
	}
	if a != again {
		t.Error("the pod template's checksum/config changed with the same pools")
	}
}

// The chart's version and appVersion follow the VERSION file, as the
// image tag does.
func TestHelmChartVersion(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join(chart, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Version    string `json:"version"`
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(data, &meta); err != nil {
		t.Fatal(err)
	}
	if v := version(t); meta.Version != v || meta.AppVersion != v {
		t.Errorf("Chart.yaml version %q appVersion %q, want both %q (the VERSION file)", meta.Version, meta.AppVersion, v)
	}
}
