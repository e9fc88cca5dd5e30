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
	addT, fetchT, err := daemonTransfer(bin, dir, src)
	if err != nil {
		return err
	}
	fmt.Printf("\ntransfer benchmark (%.0f MiB, two daemons on loopback, one process each)\n", mib)
	fmt.Printf("  %-44s %9.0f MiB/s\n", "raw TCP (Go net), baseline", mib/tcp.Seconds())
	fmt.Printf("  %-44s %9.0f MiB/s\n", "one libp2p stream (TCP+Noise+Yamux), baseline", mib/stream.Seconds())
	fmt.Printf("  %-44s %9.0f MiB/s\n", "cyxwiz add (UnixFS import into the store)", mib/addT.Seconds())
	fmt.Printf("  %-44s %9.0f MiB/s   %.0f%% of the libp2p stream, %.0f%% of raw TCP (target >= 60%% of the stream)\n",
		"cyxwiz daemon -> daemon (pin: whole DAG)", mib/fetchT.Seconds(), 100*stream.Seconds()/fetchT.Seconds(), 100*tcp.Seconds()/fetchT.Seconds())
	if kubo != "" {
		if _, err := os.Stat(kubo); err == nil {
			kt, err := kuboTransfer(kubo, dir, src)
			if err != nil {
				fmt.Printf("  %-44s failed: %v\n", "kubo -> kubo (pin add)", err)
			} else {
				fmt.Printf("  %-44s %9.0f MiB/s   reference (cyxwiz is %.1fx)\n", "kubo 0.43.1 -> kubo (pin add)", mib/kt.Seconds(), kt.Seconds()/fetchT.Seconds())
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

func rawTCP(size int64) (time.Duration, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
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
		return 0, err
	}
	buf := make([]byte, 1<<20)
	t0 := time.Now()
	for sent := int64(0); sent < size; sent += int64(len(buf)) {
		if _, err := c.Write(buf); err != nil {
			return 0, err
		}
	}
	c.Close()
	err = <-done
	return time.Since(t0), err
}

func libp2pStream(size int64) (time.Duration, error) {
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
		return 0, err
	}
	defer a.Close()
	b, err := newHost()
	if err != nil {
		return 0, err
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
		return 0, err
	}
	s, err := b.NewStream(ctx, a.ID(), "/cyxwiz/bench/1")
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 1<<20)
	t0 := time.Now()
	for sent := int64(0); sent < size; sent += int64(len(buf)) {
		if _, err := s.Write(buf); err != nil {
			return 0, err
		}
	}
	s.CloseWrite()
	err = <-done
	return time.Since(t0), err
}

// daemonTransfer adds src on one daemon and pins it on another.
func daemonTransfer(bin, dir, src string) (add, fetch time.Duration, err error) {
	var clients []*api.Client
	for _, name := range []string{"provider", "fetcher"} {
		repo := filepath.Join(dir, name)
		if out, err := exec.Command(bin, "--repo", repo, "init", "--profile", "local").CombinedOutput(); err != nil {
			return 0, 0, fmt.Errorf("init: %v: %s", err, out)
		}
		d, err := startDaemon(bin, repo)
		if err != nil {
			return 0, 0, err
		}
		defer d.stop()
		c, err := api.FromRepo(repo)
		if err != nil {
			return 0, 0, err
		}
		clients = append(clients, c)
	}
	ctx := context.Background()
	t0 := time.Now()
	res, err := clients[0].ContentAdd(ctx, api.ContentAddParams{Path: src})
	if err != nil {
		return 0, 0, err
	}
	add = time.Since(t0)
	info, err := clients[0].NodeInfo(ctx)
	if err != nil {
		return 0, 0, err
	}
	if _, err := clients[1].SwarmConnect(ctx, info.Addresses[0]); err != nil {
		return 0, 0, err
	}
	t0 = time.Now()
	if err := clients[1].ContentPin(ctx, api.ContentPinParams{CID: res.CID}); err != nil {
		return 0, 0, err
	}
	return add, time.Since(t0), nil
}

// kuboTransfer does the same between two Kubo daemons.
func kuboTransfer(bin, dir, src string) (time.Duration, error) {
	var paths []string
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
			return 0, err
		}
		for _, kv := range [][]string{{"Routing.Type", "none"}, {"--json", "Provide.Enabled", "false"},
			{"--json", "Swarm.Transports.Network.QUIC", "false"}, {"--json", "Addresses.Swarm", `["/ip4/127.0.0.1/tcp/0"]`}} {
			if _, err := run(append([]string{"config"}, kv...)...); err != nil {
				return 0, err
			}
		}
		cmd := exec.Command(bin, "daemon")
		cmd.Env = append(os.Environ(), "IPFS_PATH="+path, "IPFS_TELEMETRY=off")
		out, err := cmd.StdoutPipe()
		if err != nil {
			return 0, err
		}
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			return 0, err
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
		return 0, fmt.Errorf("kubo add: %w", err)
	}
	idJSON, err := kubo(0, "id")
	if err != nil {
		return 0, err
	}
	var id struct{ Addresses []string }
	if err := json.Unmarshal([]byte(idJSON), &id); err != nil || len(id.Addresses) == 0 {
		return 0, fmt.Errorf("kubo id: %v", err)
	}
	if _, err := kubo(1, "swarm", "connect", id.Addresses[0]); err != nil {
		return 0, fmt.Errorf("kubo swarm connect: %w", err)
	}
	t0 := time.Now()
	if _, err := kubo(1, "pin", "add", cid); err != nil {
		return 0, fmt.Errorf("kubo pin add: %w", err)
	}
	return time.Since(t0), nil
}
