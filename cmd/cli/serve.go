package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/ipfs/go-cid"
	"github.com/spf13/cobra"
)

func modelDeployCommand(e *env) *cobra.Command {
	var (
		hours      float64
		maxBatch   int
		replicas   int
		service    string
		price, mnt string
		memory     int
		indexer    string
	)
	c := &cobra.Command{
		Use:   "deploy MODEL",
		Short: "deploy trained weights (a train job's model output, or a model record) as a serve job that answers calls",
		Long: "deploy submits --replicas serve jobs for MODEL, one per provider: each loads the weights and answers " +
			"calls to the service (cyxwiz infer SERVICE) until --max-hours pass or it is undeployed. MODEL is the weights' CID, " +
			"or the ID of a model record in the registry (cyxwiz model search), whose weights are deployed. It prints the " +
			"service's name, then the serve jobs' IDs. Calls take turns among the replicas and go to another when one fails.",
		Example: "  cyxwiz model deploy bafkrei... --max-hours 2 --replicas 2\n  cyxwiz model deploy bafkrei... --service digits --price 100000 --mint MINT\n" +
			"  cyxwiz model deploy 5f3c... --indexer 203.0.113.5:5252",
		Args:              exactArgs(1, "the weights' CID or a model record's ID"),
		ValidArgsFunction: completePins(e),
		RunE: run(e, func(args []string) error {
			weights := args[0]
			if _, err := cid.Decode(weights); err != nil {
				// Not a CID: a model record of the registry.
				err := withHistory(e, indexer, func(ctx context.Context, h history) error {
					m, err := h.Model(ctx, args[0])
					if err != nil {
						return fmt.Errorf("%s is neither a CID nor a model record: %w", args[0], err)
					}
					weights = m.WeightsCID
					return nil
				})
				if err != nil {
					return err
				}
			}
			if hours <= 0 || hours > 7*24 {
				return usagef("--max-hours %g is outside (0, 168]", hours)
			}
			if replicas < 1 || replicas > 16 {
				return usagef("--replicas %d is outside 1..16", replicas)
			}
			if service == "" {
				var b [6]byte
				_, _ = rand.Read(b[:])
				service = "svc-" + hex.EncodeToString(b[:])
			}
			spec := map[string]any{
				"kind":   "serve",
				"serve":  map[string]any{"model": weights, "max_batch": maxBatch, "service": service},
				"limits": map[string]any{"wall_seconds": int(math.Ceil(hours * 3600))},
			}
			if memory > 0 {
				spec["resources"] = map[string]any{"memory_mib": memory}
			}
			if price != "" {
				spec["price"] = map[string]any{"max": price, "mint": mnt}
			}
			raw, err := json.Marshal(spec)
			if err != nil {
				return err
			}
			type deployment struct {
				Service string   `json:"service"`
				Jobs    []string `json:"jobs"`
			}
			return show(e, callTimeout, func(ctx context.Context, c *api.Client) (deployment, error) {
				d := deployment{Service: service}
				for range replicas {
					j, err := c.JobSubmit(ctx, raw)
					if err != nil {
						return d, err
					}
					d.Jobs = append(d.Jobs, j.ID)
				}
				return d, nil
			}, func(d deployment) error {
				fmt.Fprintln(e.stdout, d.Service)
				for _, id := range d.Jobs {
					fmt.Fprintln(e.stdout, id)
				}
				return nil
			})
		}),
	}
	fs := c.Flags()
	fs.Float64Var(&hours, "max-hours", 1, "how long the deployment lasts")
	fs.IntVar(&maxBatch, "max-batch", 64, "the most examples one forward pass takes")
	fs.IntVar(&replicas, "replicas", 1, "how many providers serve it")
	fs.StringVar(&service, "service", "", "the service's name, which callers call (default: a new random one)")
	fs.IntVar(&memory, "memory-mib", 0, "the memory the provider sets aside (default the job spec's)")
	fs.StringVar(&price, "price", "", "the most to pay for the whole deployment, in base units of --mint")
	fs.StringVar(&mnt, "mint", "", "the token the price is in")
	indexerFlag(fs, &indexer)
	return c
}

func modelDeploymentsCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "deployments",
		Short:   "the serve jobs this node submitted, newest first",
		Example: "  cyxwiz model deployments\n  cyxwiz model deployments --json",
		Args:    noArgs,
		RunE: run(e, func([]string) error {
			return show(e, callTimeout, func(ctx context.Context, c *api.Client) ([]api.JobInfo, error) {
				all, err := c.JobList(ctx)
				if err != nil {
					return nil, err
				}
				var out []api.JobInfo
				for _, j := range slices.DeleteFunc(all, func(j api.JobInfo) bool { return j.Kind != "serve" }) {
					// The list leaves specs out; the service is in the spec.
					full, err := c.JobStatus(ctx, j.ID)
					if err != nil {
						return nil, err
					}
					out = append(out, full)
				}
				return out, nil
			}, func(list []api.JobInfo) error {
				tw := e.table("ID\tSERVICE\tSTATE\tPROVIDER\tCREATED")
				for _, j := range list {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", j.ID, serviceName(j), j.State, orDash(j.Provider), j.CreatedAt.Local().Format(time.DateTime))
				}
				return tw.Flush()
			})
		}),
	}
}

func modelUndeployCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:               "undeploy ID",
		Short:             "end a deployment: its provider stops answering calls",
		Example:           "  cyxwiz model undeploy 06BKC7HY2359F08JS8DVVJQTR8",
		Args:              exactArgs(1, "a deployment ID"),
		ValidArgsFunction: completeJobs(e),
		RunE: run(e, func(args []string) error {
			return show(e, callTimeout, func(ctx context.Context, c *api.Client) (api.JobInfo, error) {
				j, err := c.JobStatus(ctx, args[0])
				if err != nil {
					return j, err
				}
				if j.Kind != "serve" {
					return j, fmt.Errorf("job %s is a %s job, not a deployment", j.ID, j.Kind)
				}
				return c.JobCancel(ctx, args[0])
			}, func(j api.JobInfo) error {
				state := j.State
				if state != "succeeded" && state != "failed" && state != "cancelled" {
					state = "stopping" // the provider is told; the job ends shortly
				}
				fmt.Fprintf(e.stdout, "%s: %s\n", j.ID, state)
				return nil
			})
		}),
	}
}

func inferCommand(e *env) *cobra.Command {
	var provider string
	var replicas int
	c := &cobra.Command{
		Use:   "infer SERVICE INPUT",
		Short: "call a deployed model with the examples in INPUT (a JSON array of rows, or {\"examples\": [...]}; - for stdin)",
		Long: "infer sends the examples in the file INPUT to the model deployed as SERVICE (its name, or a serve job's ID) and prints " +
			"each example's outputs: for a classifier, its most likely class and the probabilities. The answer is checked " +
			"to be signed by the provider for this call. The providers are this node's serve jobs of SERVICE and those " +
			"the DHT knows; calls take turns among them and go to the next when one fails. A priced service is paid " +
			"from a budget this node locks with each provider, a signed voucher a call. --replicas N asks N providers " +
			"and takes the answer a majority agree on, naming any that differ.",
		Example: "  cyxwiz infer 06BKC7HY2359F08JS8DVVJQTR8 digits.json\n  echo '[[0.5, -0.5]]' | cyxwiz infer 06BKC7HY2359F08JS8DVVJQTR8 -\n" +
			"  cyxwiz infer digits digits.json --replicas 3",
		Args:              exactArgs(2, "a service and an input file"),
		ValidArgsFunction: completeJobs(e),
		RunE: run(e, func(args []string) error {
			examples, err := readExamples(args[1])
			if err != nil {
				return err
			}
			return show(e, callTimeout, func(ctx context.Context, c *api.Client) (api.InferCallResult, error) {
				return c.InferCall(ctx, api.InferCallParams{Service: args[0], Provider: provider, Examples: examples, Replicas: replicas})
			}, func(r api.InferCallResult) error {
				if r.Replicas > 1 {
					fmt.Fprintf(e.stdout, "%d replicas answered", r.Replicas)
					if len(r.Mismatched) > 0 {
						fmt.Fprintf(e.stdout, "; these disagreed with the majority: %s", strings.Join(r.Mismatched, ", "))
					}
					fmt.Fprintln(e.stdout)
				}
				for i, row := range r.Outputs {
					best := 0
					for j := range row {
						if row[j] > row[best] {
							best = j
						}
					}
					vals := make([]string, len(row))
					for j, v := range row {
						vals[j] = fmt.Sprintf("%.4f", v)
					}
					fmt.Fprintf(e.stdout, "example %d: class %d  [%s]\n", i, best, strings.Join(vals, " "))
				}
				return nil
			})
		}),
	}
	c.Flags().StringVar(&provider, "provider", "", "the peer serving SERVICE (default: the provider of this node's serve job)")
	c.Flags().IntVar(&replicas, "replicas", 1, "ask this many providers (1 to 5) and take the answer a majority agree on")
	return c
}

// maxInputBytes bounds an infer input file.
const maxInputBytes = 16 << 20

// readExamples reads a JSON array of rows, or an object with "examples",
// from path (- for standard input).
func readExamples(path string) ([][]float32, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = readAllLimit(os.Stdin, maxInputBytes)
	} else {
		var f *os.File
		if f, err = os.Open(path); err == nil {
			data, err = readAllLimit(f, maxInputBytes)
			f.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var rows [][]float32
	if err := json.Unmarshal(data, &rows); err == nil {
		return rows, nil
	}
	var obj struct {
		Examples [][]float32 `json:"examples"`
	}
	if err := json.Unmarshal(data, &obj); err != nil || obj.Examples == nil {
		return nil, errors.New(path + ": want a JSON array of rows of numbers, or {\"examples\": [...]}")
	}
	return obj.Examples, nil
}

// readAllLimit reads r to its end, failing past limit bytes.
func readAllLimit(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err == nil && int64(len(data)) > limit {
		err = fmt.Errorf("more than %d bytes", limit)
	}
	return data, err
}

// serviceName is the service a serve job deploys, from its spec.
func serviceName(j api.JobInfo) string {
	var spec struct {
		Serve struct {
			Service string `json:"service"`
		} `json:"serve"`
	}
	if json.Unmarshal(j.Spec, &spec) == nil && spec.Serve.Service != "" {
		return spec.Serve.Service
	}
	return j.ID
}
