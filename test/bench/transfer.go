package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// transferBench moves size bytes between two cyxwiz daemons and, in the
// same run, over raw TCP, one libp2p stream and (when a Kubo binary is
// given) between two Kubo daemons.
func transferBench(bin, kubo, dir string, size int64) error {
	src := filepath.Join(dir, "payload.bin")
	if err := writeRandom(src, size); err != nil {
		return err
	}
	mib := float64(size) / (1 << 20)

	tcp, err := rawTCP(size)
	if err != nil {
		return fmt.Errorf("raw tcp: %w", err)
	}
	stream, err := libp2pStream(size)
	if err != nil {
		return fmt.Errorf("libp2p stream: %w", err)
	}
	addT, fetch, err := daemonTransfer(bin, dir, src)
	if err != nil {
		return err
	}
	rate := func(c cost) float64 { return mib / c.wall.Seconds() }
	fmt.Printf("\ntransfer benchmark (%.0f MiB, two daemons on loopback, one process each)\n", mib)
	fmt.Printf("  %-44s %9.0f MiB/s   %s\n", "raw TCP (Go net), baseline", rate(tcp), tcp.cpuLine(mib))
	fmt.Printf("  %-44s %9.0f MiB/s   %s\n", "one libp2p stream (TCP+Noise+Yamux), baseline", rate(stream), stream.cpuLine(mib))
	fmt.Printf("  %-44s %9.0f MiB/s\n", "cyxwiz add (UnixFS import into the store)", mib/addT.Seconds())
	fmt.Printf("  %-44s %9.0f MiB/s   %s\n", "cyxwiz daemon -> daemon (pin: whole DAG)", rate(fetch), fetch.cpuLine(mib))
	fmt.Printf("  %-44s %9s         %.0f%% of the libp2p stream, %.0f%% of raw TCP (target >= 60%% of the stream)\n",
		"", "", 100*stream.wall.Seconds()/fetch.wall.Seconds(), 100*tcp.wall.Seconds()/fetch.wall.Seconds())
	if kubo != "" {
		if _, err := os.Stat(kubo); err == nil {
			kt, err := kuboTransfer(kubo, dir, src)
			if err != nil {
				fmt.Printf("  %-44s failed: %v\n", "kubo -> kubo (pin add)", err)
			} else {
				fmt.Printf("  %-44s %9.0f MiB/s   %s\n", "kubo 0.43.1 -> kubo (pin add)", rate(kt), kt.cpuLine(mib))
				fmt.Printf("  %-44s %9s         reference (cyxwiz is %.1fx)\n", "", "", kt.wall.Seconds()/fetch.wall.Seconds())
			}
		}
	}
	return nil
}

func writeRandom(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.CopyN(f, rand.Reader, size)
	return err
}

func rawTCP(size int64) (cost, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return cost{}, err
	}
	defer l.Close()
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		_, err = io.Copy(io.Discard, c)
		c.Close()
		done <- err
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		return cost{}, err
	}
	buf := make([]byte, 1<<20)
	t0, cpu0 := time.Now(), selfCPU()
	for sent := int64(0); sent < size; sent += int64(len(buf)) {
		if _, err := c.Write(buf); err != nil {
			return cost{}, err
		}
	}
	c.Close()
	err = <-done
	return cost{wall: time.Since(t0), cpu: selfCPU() - cpu0}, err
}

func libp2pStream(size int64) (cost, error) {
	newHost := func() (*p2p.Host, error) {
		key, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			return nil, err
		}
		cfg := p2p.LocalConfig()
		cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
		return p2p.New(p2p.Params{Key: key, Config: cfg, Logger: slog.New(slog.DiscardHandler)})
	}
	a, err := newHost()
	if err != nil {
		return cost{}, err
	}
	defer a.Close()
	b, err := newHost()
	if err != nil {
		return cost{}, err
	}
	defer b.Close()
	done := make(chan error, 1)
	a.SetStreamHandler("/cyxwiz/bench/1", func(s network.Stream) {
		_, err := io.Copy(io.Discard, s)
		s.Close()
		done <- err
	})
	ctx := context.Background()
	if err := b.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: a.Addrs()}); err != nil {
		return cost{}, err
	}
	s, err := b.NewStream(ctx, a.ID(), "/cyxwiz/bench/1")
	if err != nil {
		return cost{}, err
	}
	buf := make([]byte, 1<<20)
	t0, cpu0 := time.Now(), selfCPU()
	for sent := int64(0); sent < size; sent += int64(len(buf)) {
		if _, err := s.Write(buf); err != nil {
			return cost{}, err
		}
	}
	s.CloseWrite()
	err = <-done
	return cost{wall: time.Since(t0), cpu: selfCPU() - cpu0}, err
}

// daemonTransfer adds src on one daemon and pins it on another.
// The fetch's CPU time is both daemons'.
func daemonTransfer(bin, dir, src string) (add time.Duration, fetch cost, err error) {
	var clients []*api.Client
	var pids []int
	for _, name := range []string{"provider", "fetcher"} {
		repo := filepath.Join(dir, name)
		if out, err := exec.Command(bin, "--repo", repo, "init", "--profile", "local").CombinedOutput(); err != nil {
			return 0, cost{}, fmt.Errorf("init: %v: %s", err, out)
		}
		d, err := startDaemon(bin, repo)
		if err != nil {
			return 0, cost{}, err
		}
		defer d.stop()
		pids = append(pids, d.cmd.Process.Pid)
		c, err := api.FromRepo(repo)
		if err != nil {
			return 0, cost{}, err
		}
		clients = append(clients, c)
	}
	ctx := context.Background()
	t0 := time.Now()
	res, err := clients[0].ContentAdd(ctx, api.ContentAddParams{Path: src})
	if err != nil {
		return 0, cost{}, err
	}
	add = time.Since(t0)
	info, err := clients[0].NodeInfo(ctx)
	if err != nil {
		return 0, cost{}, err
	}
	if _, err := clients[1].SwarmConnect(ctx, info.Addresses[0]); err != nil {
		return 0, cost{}, err
	}
	cpu0, err := procsCPU(pids...)
	if err != nil {
		return 0, cost{}, err
	}
	t0 = time.Now()
	if err := clients[1].ContentPin(ctx, api.ContentPinParams{CID: res.CID}); err != nil {
		return 0, cost{}, err
	}
	fetch.wall = time.Since(t0)
	cpu1, err := procsCPU(pids...)
	if err != nil {
		return 0, cost{}, err
	}
	fetch.cpu = cpu1 - cpu0
	return add, fetch, nil
}

// kuboTransfer does the same between two Kubo daemons.
func kuboTransfer(bin, dir, src string) (cost, error) {
	var paths []string
	var pids []int
	for i, name := range []string{"kubo-provider", "kubo-fetcher"} {
		path := filepath.Join(dir, name)
		run := func(args ...string) (string, error) {
			cmd := exec.Command(bin, args...)
			cmd.Env = append(os.Environ(), "IPFS_PATH="+path, "IPFS_TELEMETRY=off")
			out, err := cmd.CombinedOutput()
			if err != nil {
				return "", fmt.Errorf("ipfs %s: %v: %s", strings.Join(args, " "), err, out)
			}
			return string(out), nil
		}
		if _, err := run("init", "--profile", "test"); err != nil {
			return cost{}, err
		}
		for _, kv := range [][]string{{"Routing.Type", "none"}, {"--json", "Provide.Enabled", "false"},
			{"--json", "Swarm.Transports.Network.QUIC", "false"}, {"--json", "Addresses.Swarm", `["/ip4/127.0.0.1/tcp/0"]`}} {
			if _, err := run(append([]string{"config"}, kv...)...); err != nil {
				return cost{}, err
			}
		}
		cmd := exec.Command(bin, "daemon")
		cmd.Env = append(os.Environ(), "IPFS_PATH="+path, "IPFS_TELEMETRY=off")
		out, err := cmd.StdoutPipe()
		if err != nil {
			return cost{}, err
		}
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			return cost{}, err
		}
		defer func() {
			cmd.Process.Signal(os.Interrupt)
			cmd.Wait()
		}()
		sc := bufio.NewScanner(out)
		for sc.Scan() && !strings.Contains(sc.Text(), "Daemon is ready") {
		}
		go io.Copy(io.Discard, out)
		paths = append(paths, path)
		pids = append(pids, cmd.Process.Pid)
		_ = i
	}
	kubo := func(i int, args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "IPFS_PATH="+paths[i], "IPFS_TELEMETRY=off")
		out, err := cmd.Output()
		return strings.TrimSpace(string(out)), err
	}
	cid, err := kubo(0, "add", "-q", "--cid-version=1", src)
	if err != nil {
		return cost{}, fmt.Errorf("kubo add: %w", err)
	}
	idJSON, err := kubo(0, "id")
	if err != nil {
		return cost{}, err
	}
	var id struct{ Addresses []string }
	if err := json.Unmarshal([]byte(idJSON), &id); err != nil || len(id.Addresses) == 0 {
		return cost{}, fmt.Errorf("kubo id: %v", err)
	}
	if _, err := kubo(1, "swarm", "connect", id.Addresses[0]); err != nil {
		return cost{}, fmt.Errorf("kubo swarm connect: %w", err)
	}
	cpu0, err := procsCPU(pids...)
	if err != nil {
		return cost{}, err
	}
	t0 := time.Now()
	if _, err := kubo(1, "pin", "add", cid); err != nil {
		return cost{}, fmt.Errorf("kubo pin add: %w", err)
	}
	wall := time.Since(t0)
	cpu1, err := procsCPU(pids...)
	if err != nil {
		return cost{}, err
	}
	// The CPU of the ipfs command that asks for the pin is left out.
	return cost{wall: wall, cpu: cpu1 - cpu0}, nil
}
