// Package pgtest starts throwaway PostgreSQL servers for tests: a fresh
// cluster in a temporary folder, on a free loopback port, stopped when the
// test ends. The PostgreSQL server binaries must be installed (Debian's
// postgresql package puts them under /usr/lib/postgresql/VERSION/bin, which
// is searched as well as PATH and $CYXWIZ_PG_BIN); without them a test
// fails, saying so, rather than skipping. Under -short it skips.
//
// initdb refuses to run as root, so when the test runs as root the server
// runs as the postgres user, in a folder that user owns.
package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is a running PostgreSQL cluster of a test.
type Server struct {
	// DSN is the address of its "postgres" database.
	DSN string
	// Port is the loopback port it listens on.
	Port int

	t    testing.TB
	bin  string
	dir  string
	as   string // the user that runs it, "" for ourselves
	dbs  atomic.Int64
	down bool
}

// Start starts a server for t and returns its DSN.
func Start(t testing.TB) string {
	return StartServer(t).DSN
}

// BinDir finds the folder of the PostgreSQL server binaries.
func BinDir() (string, error) {
	return binDir(os.Getenv("CYXWIZ_PG_BIN"), "/usr/lib/postgresql/*/bin/initdb")
}

func binDir(env, pattern string) (string, error) {
	if env != "" {
		if _, err := os.Stat(filepath.Join(env, "initdb")); err != nil {
			return "", fmt.Errorf("CYXWIZ_PG_BIN=%s holds no initdb: install Debian's postgresql package (apt-get install postgresql) or point it at PostgreSQL's bin folder", env)
		}
		return env, nil
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if _, err := os.Stat(filepath.Join(filepath.Dir(p), "initdb")); err == nil {
			return filepath.Dir(p), nil
		}
	}
	found, _ := filepath.Glob(pattern)
	if len(found) == 0 {
		return "", fmt.Errorf("no PostgreSQL server binaries (initdb, pg_ctl) on PATH, in $CYXWIZ_PG_BIN or under /usr/lib/postgresql/*/bin: install Debian's postgresql package (apt-get install postgresql)")
	}
	// The highest version: compare the version folders as numbers.
	slices.SortFunc(found, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(a))))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(b))))
		return va - vb
	})
	return filepath.Dir(found[len(found)-1]), nil
}

// StartServer starts a server for t, stopped in t's cleanup.
func StartServer(t testing.TB) *Server {
	t.Helper()
	if testing.Short() {
		t.Skip("PostgreSQL tests start a server: skipped under -short")
	}
	bin, err := BinDir()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "cyxwiz-pg-")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, bin: bin, dir: dir}
	t.Cleanup(func() {
		s.Stop()
		os.RemoveAll(dir)
	})
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, PostgreSQL must run as the postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		s.as = "postgres"
	}
	if out, err := s.run("initdb", "-D", s.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8",
		"--locale=C", "--no-sync"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	var last error
	for range 3 { // the free port may be taken before the server binds it
		if last = s.start(); last == nil {
			break
		}
	}
	if last != nil {
		t.Fatal(last)
	}
	return s
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

// run runs a PostgreSQL binary, as the server's user.
func (s *Server) run(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, name), args...)
	if s.as != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", s.as, "--", filepath.Join(s.bin, name)}, args...)...)
	}
	cmd.Dir = s.dir
	return cmd.CombinedOutput()
}

func (s *Server) start() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.Port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -c unix_socket_directories=%s", s.Port, s.dir)
	if out, err := s.run("pg_ctl", "start", "-D", s.data(), "-w", "-t", "60", "-l", filepath.Join(s.dir, "log"), "-o", opts); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "log"))
		return fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	s.down = false
	s.DSN = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.Port)
	return nil
}

// Stop stops the server (fast shutdown: sessions are cut). It is
// idempotent.
func (s *Server) Stop() {
	if s.down {
		return
	}
	s.down = true
	if _, err := os.Stat(filepath.Join(s.data(), "postmaster.pid")); err != nil {
		return
	}
	if out, err := s.run("pg_ctl", "stop", "-D", s.data(), "-m", "fast", "-w", "-t", "60"); err != nil {
		s.t.Errorf("pg_ctl stop: %v\n%s", err, out)
	}
}

// Restart starts a stopped server again, on the same port if it can.
func (s *Server) Restart() {
	s.t.Helper()
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -c unix_socket_directories=%s", s.Port, s.dir)
	if out, err := s.run("pg_ctl", "start", "-D", s.data(), "-w", "-t", "60", "-l", filepath.Join(s.dir, "log"), "-o", opts); err != nil {
		s.t.Fatalf("pg_ctl start: %v\n%s", err, out)
	}
	s.down = false
}

// NewDatabase creates an empty database on the server and returns its DSN.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("db%d", s.dbs.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, s.DSN)
	if err != nil {
		t.Fatalf("connect to the test server: %v", err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	return strings.Replace(s.DSN, "/postgres?", "/"+name+"?", 1)
}
