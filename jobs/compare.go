package jobs

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/cyxwiz/cyxwiz/market"
)

// MetricsTolerance is how far two replicas of a GPU train job may differ
// on a final metric and still agree: relative to the larger figure, or
// absolute for figures below 1. GPU training is not bit-exact, so such
// replicas are compared on their metrics only.
const MetricsTolerance = 0.01

// sameResult reports whether two replicas' results agree, and when they
// do not, says how they differ. WASM jobs and CPU train jobs are
// deterministic: their status, exit code and output CIDs must be equal
// (for a train job its weights' CID and its final metrics, less the
// training time, rather than every output: the metrics log records
// times). A GPU train job compares status, exit code and its final
// metrics within MetricsTolerance.
func sameResult(spec market.Spec, a, b *market.Result) (bool, string) {
	switch {
	case a.Status != b.Status:
		return false, fmt.Sprintf("status %s, not %s", b.Status, a.Status)
	case a.ExitCode != b.ExitCode:
		return false, fmt.Sprintf("exit code %d, not %d", b.ExitCode, a.ExitCode)
	case a.Status == market.StatusFailed && reasonClass(a.Reason) != reasonClass(b.Reason):
		return false, fmt.Sprintf("failed with %s, not %s", reasonClass(b.Reason), reasonClass(a.Reason))
	case a.Status == market.StatusFailed && spec.Kind != market.KindTrain && a.LogCID != b.LogCID:
		// A deterministic program fails the same way everywhere, output
		// and all.
		return false, fmt.Sprintf("failed with the output %s, not %s", b.LogCID, a.LogCID)
	}
	if spec.Kind != market.KindTrain {
		return sameOutputs(a.Outputs, b.Outputs)
	}
	gpu := spec.Resources.GPU != nil
	if !gpu && a.ModelCID != b.ModelCID {
		return false, fmt.Sprintf("weights %s, not %s", b.ModelCID, a.ModelCID)
	}
	return sameMetrics(a.Metrics, b.Metrics, gpu)
}

func sameOutputs(a, b []market.OutputRef) (bool, string) {
	cids := func(outs []market.OutputRef) map[string]string {
		m := map[string]string{}
		for _, o := range outs {
			m[o.Name] = o.CID
		}
		return m
	}
	ma, mb := cids(a), cids(b)
	for _, name := range slices.Sorted(maps.Keys(ma)) {
		if mb[name] != ma[name] {
			return false, fmt.Sprintf("output %s is %q, not %q", name, mb[name], ma[name])
		}
	}
	for _, name := range slices.Sorted(maps.Keys(mb)) {
		if _, ok := ma[name]; !ok {
			return false, fmt.Sprintf("output %s is extra", name)
		}
	}
	return true, ""
}

// reasonClass is the class a result's reason begins with ("exit",
// "wall-time", "trap", ...).
func reasonClass(reason string) string {
	class, _, _ := strings.Cut(reason, ":")
	return class
}

// timeMetric is the final metric that records time, which replicas do
// not share.
const timeMetric = "seconds"

func sameMetrics(a, b map[string]float64, tolerant bool) (bool, string) {
	names := map[string]bool{}
	for n := range a {
		names[n] = true
	}
	for n := range b {
		names[n] = true
	}
	delete(names, timeMetric)
	for _, n := range slices.Sorted(maps.Keys(names)) {
		x, okA := a[n]
		y, okB := b[n]
		if !okA || !okB {
			return false, fmt.Sprintf("metric %s is missing from one result", n)
		}
		if x == y || tolerant && math.Abs(x-y) <= MetricsTolerance*max(1, math.Abs(x), math.Abs(y)) {
			continue
		}
		return false, fmt.Sprintf("metric %s is %g, not %g", n, y, x)
	}
	return true, ""
}

// replicaGroup is a set of replicas whose results agree with its first.
type replicaGroup struct {
	result *market.Result
	ids    []string
}

// groupResults sorts the replicas' results into groups that agree with
// each group's first result, in the order given; largest first, ties in
// order of first appearance.
func groupResults(spec market.Spec, ids []string, results []*market.Result) []replicaGroup {
	var groups []replicaGroup
	for i, r := range results {
		k := slices.IndexFunc(groups, func(g replicaGroup) bool { ok, _ := sameResult(spec, g.result, r); return ok })
		if k < 0 {
			groups = append(groups, replicaGroup{result: r})
			k = len(groups) - 1
		}
		groups[k].ids = append(groups[k].ids, ids[i])
	}
	slices.SortStableFunc(groups, func(a, b replicaGroup) int { return len(b.ids) - len(a.ids) })
	return groups
}

// majority returns the group that a strict majority of the n replicas
// asked for agree on, and whether there is one: more than n/2 of them,
// and more than any other group.
func majority(groups []replicaGroup, n int) (replicaGroup, bool) {
	if len(groups) == 0 || len(groups[0].ids) <= n/2 {
		return replicaGroup{}, false
	}
	if len(groups) > 1 && len(groups[1].ids) == len(groups[0].ids) {
		return replicaGroup{}, false
	}
	return groups[0], true
}

// describeGroups summarizes the groups for a reason: "2 agree, 1 differs".
func describeGroups(groups []replicaGroup) string {
	var parts []string
	for _, g := range groups {
		parts = append(parts, fmt.Sprint(len(g.ids)))
	}
	return strings.Join(parts, " vs ")
}
