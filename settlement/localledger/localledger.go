// Package localledger runs the local Solana ledger for tests and for
// `cyxwiz devnet`: tools/ledger/server.mjs, a Node program that serves the
// Solana JSON-RPC and PubSub subset the escrow client uses on top of LiteSVM
// (the real SVM and the real System, SPL Token, Associated Token Account,
// Memo and Stake programs), on loopback only.
//
// The server's interface, which clients of this package rely on:
//
//   - One port serves the JSON-RPC over HTTP POST (RPC) and the PubSub over
//     WebSocket (WS). JSON-RPC ids are echoed verbatim.
//   - Methods: getVersion, getHealth, getSlot, getBlockHeight,
//     getLatestBlockhash, isBlockhashValid, getMinimumBalanceForRentExemption,
//     getBalance, getAccountInfo and getMultipleAccounts (base64 or base58),
//     getTokenAccountBalance, getFeeForMessage, sendTransaction (base64 or
//     base58), simulateTransaction, getSignatureStatuses, getSignaturesForAddress, getTransaction,
//     requestAirdrop. PubSub: signatureSubscribe, accountSubscribe and
//     slotSubscribe, with their Unsubscribe methods.
//   - Errors as a validator's: -32002 "Transaction simulation failed" with
//     data {err, logs} when preflight fails (err "BlockhashNotFound",
//     "AlreadyProcessed", {"InstructionError": [i, e]}, ...), -32003 for a bad
//     signature, -32602 for bad params or an undecodable transaction, -32601
//     for an unknown method, -32700 for malformed JSON. With skipPreflight a
//     transaction that cannot land is dropped and its signature returned.
//   - Ledger rules: a new blockhash per slot; a slot ends every 400 ms and
//     after each landed transaction; a blockhash is valid for 150 slots;
//     durable-nonce transactions (first instruction AdvanceNonceAccount,
//     recent blockhash = the nonce) are valid while the nonce is unchanged,
//     and landing one, failed or not, moves the nonce on; a landed signature
//     is refused again. A replayed durable-nonce transaction therefore fails
//     with BlockhashNotFound, a replayed ordinary one with AlreadyProcessed.
//     Every commitment is reached at once: statuses read "finalized". Fees
//     are 5000 lamports per signature, charged on failed transactions too.
//     The Clock sysvar is wall time plus the offset WarpTime adds.
package localledger

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// ErrUnavailable is returned by Start when Node.js or the ledger's npm
// packages are missing.
var ErrUnavailable = errors.New("local Solana ledger unavailable: it needs Node.js 20 or later on PATH " +
	"and its npm packages (npm ci --prefix tools/ledger)")

// Options configure Start.
type Options struct {
	// Dir is the tools/ledger folder. Empty: found by walking up from the
	// working directory, then from the executable's folder.
	Dir string
	// Node is the node binary. Empty: "node" from PATH.
	Node string
	// Logger receives the ledger's log lines at debug level. Nil: discarded.
	Logger *slog.Logger
}

// Ledger is a running local ledger.
type Ledger struct {
	rpc, ws string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	stderr  *lineLog
	client  *http.Client

	exited  chan struct{} // closed once the process has exited
	waitErr error         // its exit status, read after exited

	mu      sync.Mutex
	closing bool
	once    sync.Once
	err     error
}

const (
	startTimeout = time.Minute
	// exitUnavailable is the server's exit status when LiteSVM cannot load:
	// not installed, or no native build for this platform.
	exitUnavailable = 3
)

// Start starts a ledger and waits until it serves. The ledger outlives ctx;
// Close stops it. It also stops when this process dies, as its stdin closes.
func Start(ctx context.Context, opts Options) (*Ledger, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir := opts.Dir
	if dir == "" {
		var err error
		if dir, err = findDir(); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "server.mjs")); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	for _, pkg := range []string{"litesvm", "ws"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
			return nil, fmt.Errorf("%w: npm package %s is not installed in %s", ErrUnavailable, pkg, dir)
		}
	}
	node := opts.Node
	if node == "" {
		node = "node"
	}
	node, err := exec.LookPath(node)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}

	l := &Ledger{
		cmd:    exec.Command(node, "server.mjs", "--port", "0"),
		stderr: &lineLog{log: log},
		client: &http.Client{Timeout: time.Minute},
		exited: make(chan struct{}),
	}
	l.cmd.Dir = dir
	l.cmd.Stderr = l.stderr
	if l.stdin, err = l.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := l.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := l.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}

	// The first line of stdout says where it listens; the rest is drained
	// before Wait, which closes the pipe.
	first := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		first <- line
		io.Copy(io.Discard, r)
		err := l.cmd.Wait()
		l.mu.Lock()
		closing := l.closing
		l.mu.Unlock()
		if !closing {
			log.Warn("local ledger exited", "error", err, "stderr", l.stderr.tail())
		}
		l.waitErr = err
		close(l.exited) // last: nothing logs after Close returns
	}()

	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	var line string
	select {
	case line = <-first:
	case <-ctx.Done():
		l.Close()
		return nil, fmt.Errorf("local ledger did not start: %w", ctx.Err())
	}
	var addr struct{ RPC, WS string }
	if err := json.Unmarshal([]byte(line), &addr); err != nil || !strings.HasPrefix(addr.RPC, "http://127.0.0.1:") || !strings.HasPrefix(addr.WS, "ws://127.0.0.1:") {
		l.Close()
		<-l.exited
		tail := l.stderr.tail()
		var exit *exec.ExitError
		if errors.As(l.waitErr, &exit) && exit.ExitCode() == exitUnavailable {
			return nil, fmt.Errorf("%w: %s", ErrUnavailable, tail)
		}
		return nil, fmt.Errorf("local ledger did not start (%w): %s", l.waitErr, tail)
	}
	l.rpc, l.ws = addr.RPC, addr.WS
	log.Debug("local ledger started", "rpc", l.rpc, "ws", l.ws, "pid", l.cmd.Process.Pid)
	return l, nil
}

// findDir looks for tools/ledger in the working directory, the executable's
// folder, and the folders above them.
func findDir() (string, error) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		starts = append(starts, filepath.Dir(exe))
	}
	for _, start := range starts {
		for d := start; ; d = filepath.Dir(d) {
			dir := filepath.Join(d, "tools", "ledger")
			if _, err := os.Stat(filepath.Join(dir, "server.mjs")); err == nil {
				return dir, nil
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	return "", fmt.Errorf("%w: tools/ledger/server.mjs not found above %s", ErrUnavailable, strings.Join(starts, " or "))
}

// RPC returns the JSON-RPC URL, http://127.0.0.1:PORT.
func (l *Ledger) RPC() string { return l.rpc }

// WS returns the PubSub URL, ws://127.0.0.1:PORT.
func (l *Ledger) WS() string { return l.ws }

// WarpTime moves the ledger's clock (the Clock sysvar) forward by d.
func (l *Ledger) WarpTime(ctx context.Context, d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("local ledger: cannot warp back in time (%v)", d)
	}
	return l.call(ctx, "cyxwiz_warpTime", []any{d.Seconds()}, nil)
}

// AdvanceSlots ends n slots, each with a new blockhash; blockhashes older
// than 150 slots expire.
func (l *Ledger) AdvanceSlots(ctx context.Context, n int) error {
	return l.call(ctx, "cyxwiz_advanceSlots", []any{n}, nil)
}

// Airdrop credits lamports to address (base58); the transfer has landed
// when it returns.
func (l *Ledger) Airdrop(ctx context.Context, address string, lamports uint64) error {
	var sig string
	return l.call(ctx, "requestAirdrop", []any{address, lamports}, &sig)
}

// RPCError is an error answer of the ledger's JSON-RPC.
type RPCError struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// Error formats the code and message.
func (e *RPCError) Error() string { return fmt.Sprintf("rpc error %d: %s", e.Code, e.Message) }

// call makes one JSON-RPC call and decodes its result into out (if not nil).
func (l *Ledger) call(ctx context.Context, method string, params []any, out any) error {
	body, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.rpc, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := l.client.Do(req)
	if err != nil {
		return fmt.Errorf("local ledger %s: %w", method, err)
	}
	defer resp.Body.Close()
	var r struct {
		Result json.RawMessage
		Error  *RPCError
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&r); err != nil {
		return fmt.Errorf("local ledger %s: %s: %w", method, resp.Status, err)
	}
	if r.Error != nil {
		return fmt.Errorf("local ledger %s: %w", method, r.Error)
	}
	if out != nil {
		return json.Unmarshal(r.Result, out)
	}
	return nil
}

// Close stops the ledger and waits for it to exit: it closes the ledger's
// stdin, then interrupts and finally kills the process it started if it
// lingers. Calling it again returns the first result.
func (l *Ledger) Close() error {
	l.once.Do(func() {
		l.mu.Lock()
		l.closing = true
		l.mu.Unlock()
		select {
		case <-l.exited:
			// It had exited on its own: report how.
			if l.waitErr != nil {
				l.err = fmt.Errorf("local ledger had exited: %w: %s", l.waitErr, l.stderr.tail())
			}
			return
		default:
		}
		l.stdin.Close()
		for _, stop := range []func() error{
			func() error { return nil },
			func() error { return l.cmd.Process.Signal(os.Interrupt) },
			l.cmd.Process.Kill,
		} {
			stop()
			select {
			case <-l.exited:
				return
			case <-time.After(5 * time.Second):
			}
		}
		<-l.exited
	})
	return l.err
}

// lineLog logs what the process writes to stderr, line by line, and keeps
// the last lines for error messages.
type lineLog struct {
	log     *slog.Logger
	mu      sync.Mutex
	partial []byte
	last    []string
}

func (w *lineLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimPrefix(string(w.partial[:i]), "ledger: ")
		w.partial = w.partial[i+1:]
		w.log.Debug(line, "component", "ledger")
		if w.last = append(w.last, line); len(w.last) > 20 {
			w.last = w.last[1:]
		}
	}
	if len(w.partial) > 64<<10 { // a runaway line: keep the start
		w.partial = w.partial[:64<<10]
	}
	return len(p), nil
}

func (w *lineLog) tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(append(w.last, string(w.partial)), "\n")
}
