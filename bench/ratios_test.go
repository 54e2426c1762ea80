package main

import (
	"strings"
	"testing"
)

// TestPrintRatios checks the ratio table: per kernel event, against the
// floor, and per logged record where the reference lost events.
func TestPrintRatios(t *testing.T) {
	rs := []result{
		{Scenario: "nohash", Subject: subjRef, Offered: "max", Events: 20000, Expected: 20000, Logged: 5000, CPUms: 300},
		{Scenario: "nohash", Subject: subjGo, Offered: "max", Events: 20000, Expected: 20000, Logged: 20000, CPUms: 100},
		{Scenario: "nohash", Subject: subjFloor, Offered: "max", Events: 20000, Expected: 20000, Logged: 20000, CPUms: 80},
	}
	var b strings.Builder
	printRatios(&b, rs)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	row := strings.Fields(lines[len(lines)-1])
	// go 5.00 ms/1k, ulogd2 15.00, 0.33×; floor 4.00, 1.25×; lost 0 and
	// 75 %; per logged: 5.00 against 60.00, 0.08×.
	want := []string{"nohash", "max", "5.00", "15.00", "0.33×", "4.00", "1.25×", "0.00", "75.00", "0.08×"}
	if strings.Join(row, " ") != strings.Join(want, " ") {
		t.Errorf("ratio row\n got %q\nwant %q\n%s", row, want, b.String())
	}
}

// TestPrintRatiosBase checks the go/base column a second ulogd-go binary
// (-ulogd-go-base) adds.
func TestPrintRatiosBase(t *testing.T) {
	rs := []result{
		{Scenario: "json", Subject: subjGo, Offered: "20000/s", Events: 20000, Expected: 20000, Logged: 20000, CPUms: 100},
		{Scenario: "json", Subject: subjBase, Offered: "20000/s", Events: 20000, Expected: 20000, Logged: 20000, CPUms: 80},
	}
	var b strings.Builder
	printRatios(&b, rs)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if head := lines[len(lines)-2]; !strings.HasSuffix(strings.TrimSpace(head), "base ms/1k  go/base") {
		t.Errorf("header %q lacks the base columns", head)
	}
	row := strings.Fields(lines[len(lines)-1])
	if got := strings.Join(row[len(row)-2:], " "); got != "4.00 1.25×" {
		t.Errorf("base cells %q, want \"4.00 1.25×\"\n%s", got, b.String())
	}
}

// TestRatiosByRound checks that -repeat ratios are taken round by round:
// the machine slows down in the second round, which the per-subject
// medians (4.0 against 2.0, 2.00×) would mix up; the rounds say 1.25×.
func TestRatiosByRound(t *testing.T) {
	run := func(subj string, cpu float64) result {
		return result{Scenario: "json", Subject: subj, Offered: "20000/s", Events: 1000, Expected: 1000, Logged: 1000, CPUms: cpu}
	}
	goRuns := []result{run(subjGo, 2.5), run(subjGo, 5.0), run(subjGo, 4.0)}
	floorRuns := []result{run(subjFloor, 2.0), run(subjFloor, 4.0), run(subjFloor, 1.0)}
	rs := []result{median(goRuns), median(floorRuns)}
	var b strings.Builder
	printRatios(&b, rs)
	out := b.String()
	if !strings.Contains(out, "1.25× (1.25, 1.25, 4.00)") {
		t.Errorf("go/floor is not the median of the rounds' ratios:\n%s", out)
	}
}

// TestRatiosSkipFailedRounds checks that a round in which either subject's
// run failed is left out of the ratio instead of counting as 0×.
func TestRatiosSkipFailedRounds(t *testing.T) {
	run := func(subj string, cpu float64, err string) result {
		return result{Scenario: "json", Subject: subj, Offered: "20000/s", Events: 1000, Expected: 1000, Logged: 1000, CPUms: cpu, Err: err}
	}
	// The reference's or the floor's failed run: a failed ulogd-go run
	// leaves the whole row out of the table.
	failed := run(subjFloor, 0.5, "subject exited during the run")
	goRuns := []result{run(subjGo, 3.0, ""), run(subjGo, 2.0, ""), run(subjGo, 2.4, "")}
	floorRuns := []result{run(subjFloor, 2.0, ""), failed, run(subjFloor, 2.0, "")}
	var b strings.Builder
	printRatios(&b, []result{median(goRuns), median(floorRuns)})
	if out := b.String(); !strings.Contains(out, "1.50× (1.50, 1.20)") {
		t.Errorf("go/floor should use the two good rounds only:\n%s", out)
	}
}
