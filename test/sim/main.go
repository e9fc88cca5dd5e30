// Command sim simulates the market protocol at a thousand nodes and more:
// a discrete-event run on a virtual clock, in which every node signs,
// opens and checks the market's real envelopes with a real key, bids by
// the market's real strategies, and ranks bids with market.Rank, under
// the jobs engine's default timing, over a modelled network (a gossipsub
// mesh with its real parameters, streams of one round trip, per-link RTT,
// loss). See docs/scale.md for what is real and what is modelled.
//
//	go run ./test/sim -nodes 1000,10000 -jobs 50
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "sim:", err)
		os.Exit(1)
	}
}

// run parses the flags, simulates each swarm size in turn and prints the
// table, then each run's breakdown.
func run(args []string, out io.Writer) error {
	p := DefaultParams()
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	sizes := fs.String("nodes", "1000", "swarm sizes to simulate, comma-separated")
	fs.IntVar(&p.Jobs, "jobs", p.Jobs, "jobs submitted per run")
	fs.Float64Var(&p.Rate, "rate", p.Rate, "jobs per second across the swarm (Poisson arrivals)")
	fs.DurationVar(&p.RTTMin, "rtt-min", p.RTTMin, "least round trip of a link")
	fs.DurationVar(&p.RTTMax, "rtt-max", p.RTTMax, "greatest round trip of a link")
	fs.Float64Var(&p.Loss, "loss", p.Loss, "chance that one transmission is lost")
	fs.Float64Var(&p.Providers, "providers", p.Providers, "share of nodes that run jobs")
	fs.IntVar(&p.ExtraPeers, "extra-peers", p.ExtraPeers, "topic peers of each node beyond its mesh")
	fs.Uint64Var(&p.Seed, "seed", p.Seed, "seed of the run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var reports []Report
	fmt.Fprintln(out, header)
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return fmt.Errorf("-nodes %q: %w", f, err)
		}
		p.Nodes = n
		r, err := Run(p)
		if err != nil {
			return fmt.Errorf("%d nodes: %w", n, err)
		}
		if err := r.Check(); err != nil {
			return fmt.Errorf("%d nodes: %w", n, err)
		}
		fmt.Fprintln(out, r.row())
		reports = append(reports, r)
	}
	for _, r := range reports {
		r.details(out)
	}
	return nil
}
