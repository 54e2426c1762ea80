package metrics

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dashboardPath is the Grafana dashboard shipped in contrib/.
const dashboardPath = "../../contrib/grafana/ulogd.json"

// dashboardExprs returns every PromQL expression of the dashboard: the
// panels' targets and the variables' queries.
func dashboardExprs(t *testing.T) (panels map[string][]string, vars []string) {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Inputs []struct {
			Name, Type, PluginID string
		} `json:"__inputs"`
		Title  string
		UID    string
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
		Templating struct {
			List []struct {
				Name  string
				Query struct{ Query string }
			}
		}
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s is not JSON: %v", dashboardPath, err)
	}
	if d.Title == "" || d.UID == "" || len(d.Inputs) != 1 || d.Inputs[0].PluginID != "prometheus" {
		t.Errorf("%s: title %q, uid %q, inputs %+v: want a title, a uid and one Prometheus data source input (for Grafana's import)", dashboardPath, d.Title, d.UID, d.Inputs)
	}
	panels = map[string][]string{}
	for _, p := range d.Panels {
		if p.Title == "" || len(p.Targets) == 0 {
			t.Errorf("panel %q without title or query", p.Title)
		}
		for _, tg := range p.Targets {
			panels[p.Title] = append(panels[p.Title], tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		vars = append(vars, v.Query.Query)
	}
	return panels, vars
}

var metricName = regexp.MustCompile(`\b(?:ulogd|go|process)_[a-z0-9_]+\b`)

// TestDashboard: the Grafana dashboard is JSON Grafana can import, shows
// events/s, losses, drops and queue depth per instance, and uses only
// metrics the daemon exports, in expressions promtool accepts.
func TestDashboard(t *testing.T) {
	panels, vars := dashboardExprs(t)

	// What the daemon exports: its own names, and those of the Go and
	// process collectors as a scrape shows them.
	f := newFixture(t)
	mfs, err := Registry(f.c).Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := Names()
	for _, mf := range mfs {
		exported = append(exported, mf.GetName())
	}

	var all []string
	for _, exprs := range panels {
		all = append(all, exprs...)
	}
	all = append(all, vars...)
	used := map[string]bool{}
	for _, e := range all {
		for _, n := range metricName.FindAllString(e, -1) {
			used[n] = true
			if !slices.Contains(exported, n) {
				t.Errorf("the dashboard uses %s, which the daemon does not export: %s", n, e)
			}
		}
	}
	for _, want := range []string{"ulogd_events_received_total", "ulogd_events_lost_total", "ulogd_records_dropped_total", "ulogd_queue_depth_records"} {
		if !used[want] {
			t.Errorf("the dashboard has no panel with %s", want)
		}
	}

	// Every expression parses: promtool checks them as recording rules,
	// with Grafana's variables replaced.
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus)")
	}
	grafanaVars := strings.NewReplacer("$__rate_interval", "1m", "$job", ".*", "$instance", ".*")
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, e := range all {
		if strings.HasPrefix(e, "label_values(") {
			// A Grafana function: its argument is the selector.
			e = strings.TrimSuffix(strings.TrimPrefix(e, "label_values("), ")")
			e = e[:strings.LastIndex(e, ",")]
		}
		q, _ := json.Marshal(grafanaVars.Replace(e))
		fmt.Fprintf(&rules, "      - record: dashboard:expr%d\n        expr: %s\n", i, q)
	}
	path := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(path, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s\n%s", err, out, rules.String())
	}
}
