package wasm

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/compute"
)

var (
	guestOnce  sync.Once
	guestBytes []byte
)

// sharedGuest builds testdata/guest once for the sandbox tests.
func sharedGuest(t *testing.T) []byte {
	guestOnce.Do(func() { guestBytes = buildGuest(t) })
	if guestBytes == nil {
		t.Fatal("guest did not build")
	}
	return guestBytes
}

// jobTree is a job folder deep inside a temporary tree, with a secret
// file in each folder above it, as a provider's repo holds its keys.
type jobTree struct {
	base, job, in, out string
	secrets            []string // host folders that hold a secret, nearest first
}

func newJobTree(t *testing.T) jobTree { return newJobTreeIn(t, t.TempDir()) }

// newJobTreeIn is newJobTree below base.
func newJobTreeIn(t *testing.T, base string) jobTree {
	job := filepath.Join(base, "a", "b", "c", "job")
	jt := jobTree{base: base, job: job, in: filepath.Join(job, "in"), out: filepath.Join(job, "out")}
	for _, d := range []string{jt.in, jt.out} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for d := job; ; d = filepath.Dir(d) {
		if err := os.WriteFile(filepath.Join(d, "secret"), []byte("SECRET in "+d), 0o600); err != nil {
			t.Fatal(err)
		}
		jt.secrets = append(jt.secrets, d)
		if d == base {
			break
		}
	}
	if err := os.WriteFile(filepath.Join(jt.in, "data"), []byte("input"), 0o600); err != nil {
		t.Fatal(err)
	}
	return jt
}

// pwned lists the files named "pwned" outside the job's /out.
func (jt jobTree) pwned(t *testing.T) []string {
	var found []string
	filepath.WalkDir(jt.base, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "pwned" && !strings.HasPrefix(p, jt.out+string(filepath.Separator)) {
			found = append(found, p)
		}
		return nil
	})
	return found
}

func runGuest(t *testing.T, e *Executor, jt jobTree, args ...string) (compute.Outcome, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	o, err := e.Run(context.Background(), compute.Job{ID: t.Name(), Program: sharedGuest(t), Args: args,
		InDir: jt.in, OutDir: jt.out, MemoryMiB: 64, OutBytes: 64 << 20, Wall: 20 * time.Second, Stdout: &stdout, Stderr: &stderr})
	if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return o, stdout.String() + stderr.String()
}

// testMaxEntries keeps the entry bound small enough to test quickly.
const testMaxEntries = 2000

func newExecutor(t *testing.T) *Executor {
	e, err := New(Options{MaxOutEntries: testMaxEntries})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e
}

// TestSandboxEscapes: a guest that makes symlinks and hard links at every
// depth, absolute and relative, and tries to read, write and list through
// them, reaches nothing outside /in and /out.
func TestSandboxEscapes(t *testing.T) {
	e := newExecutor(t)
	jt := newJobTree(t)
	var ops []string
	for k := 1; k <= 7; k++ {
		up := strings.Repeat("../", k)
		link := fmt.Sprintf("/out/up%d", k)
		ops = append(ops, "symlink:"+up+":"+link, "read:"+link+"/secret", "write:"+link+"/pwned", "list:"+link,
			fmt.Sprintf("symlink:%ssecret:/out/s%d", up, k), fmt.Sprintf("read:/out/s%d", k),
			fmt.Sprintf("mkdir:/out/d%d", k), fmt.Sprintf("symlink:%s..:/out/d%d/up", up, k), fmt.Sprintf("read:/out/d%d/up/secret", k))
	}
	ops = append(ops,
		"remove:/out", "rename:/out:/out2", "mkdir:/out",
		"symlink:/:/out/root", "read:/out/root/etc/hostname",
		"symlink:"+jt.base+":/out/abs", "read:/out/abs/secret",
		"link:/in/data:/out/hard", "write:/out/own", "link:/out/own:/out/own2",
		"rename:/out/own:/in/moved", "chmod:/out/own", "read:/in/../secret", "read:/out/../secret",
		"read:/secret", "write:/pwned")
	o, out := runGuest(t, e, jt, append([]string{"try"}, ops...)...)
	if !o.OK() {
		t.Fatalf("guest failed: %+v\n%s", o, out)
	}
	if strings.Contains(out, "SECRET") {
		t.Errorf("guest read a secret:\n%s", out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		op, _, _ := strings.Cut(line, ":")
		if (op == "symlink" || op == "link" || op == "rename") && strings.HasSuffix(line, ": ok") {
			t.Errorf("guest made a link or moved a file out: %s", line)
		}
		if strings.HasPrefix(line, "remove:/out:") && strings.HasSuffix(line, ": ok") {
			t.Errorf("guest removed its /out: %s", line)
		}
	}
	if fi, err := os.Stat(filepath.Join(jt.out, "own")); err != nil || fi.Mode().Perm()&0o600 != 0o600 {
		t.Errorf("the provider cannot read and write /out/own: %v, %v", fi.Mode(), err)
	}
	if p := jt.pwned(t); len(p) > 0 {
		t.Errorf("guest wrote outside /out: %v", p)
	}
	entries, _ := os.ReadDir(jt.out)
	for _, e := range entries {
		if e.Type()&fs.ModeSymlink != 0 {
			t.Errorf("/out holds a symlink %s", e.Name())
		}
	}
}

// TestSandboxPlantedLinks: symlinks already in the job's folders (as a
// fetch bug or a hostile input could leave them) are followed only while
// they stay inside.
func TestSandboxPlantedLinks(t *testing.T) {
	e := newExecutor(t)
	jt := newJobTree(t)
	plant := func(target, link string) {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	var ops []string
	for k := 1; k <= 6; k++ {
		plant(strings.Repeat("../", k), filepath.Join(jt.in, fmt.Sprintf("up%d", k)))
		plant(strings.Repeat("../", k)+"secret", filepath.Join(jt.in, fmt.Sprintf("s%d", k)))
		ops = append(ops, fmt.Sprintf("read:/in/up%d/secret", k), fmt.Sprintf("list:/in/up%d", k), fmt.Sprintf("read:/in/s%d", k))
	}
	if err := os.Mkdir(filepath.Join(jt.in, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	plant("..", filepath.Join(jt.in, "sub", "parent"))          // inside: /in
	plant("parent/../secret", filepath.Join(jt.in, "sub", "x")) // through parent: outside
	plant(jt.base, filepath.Join(jt.in, "abs"))
	plant("data", filepath.Join(jt.in, "good"))
	plant("../..", filepath.Join(jt.out, "planted"))
	ops = append(ops, "read:/in/sub/x", "read:/in/abs/secret", "write:/out/planted/pwned", "read:/out/planted/secret",
		"read:/in/good", "read:/in/sub/parent/data")
	o, out := runGuest(t, e, jt, append([]string{"try"}, ops...)...)
	if !o.OK() {
		t.Fatalf("guest failed: %+v\n%s", o, out)
	}
	if strings.Contains(out, "SECRET") {
		t.Errorf("guest read a secret:\n%s", out)
	}
	if p := jt.pwned(t); len(p) > 0 {
		t.Errorf("guest wrote outside /out: %v", p)
	}
	for _, want := range []string{`read:/in/good: ok "input"`, `read:/in/sub/parent/data: ok "input"`} {
		if !strings.Contains(out, want) {
			t.Errorf("an in-tree link was not followed: want %q in\n%s", want, out)
		}
	}
}

// TestSandboxDiskBounds: /out holds at most disk_mib bytes and the
// executor's bound on entries; past either the job fails as disk, and rewriting
// one file within the bound is fine.
func TestSandboxDiskBounds(t *testing.T) {
	e := newExecutor(t)
	// A file system whose files may be as long as an int64 allows (tmpfs)
	// takes a write at the largest offset; ext4 refuses it itself.
	big := ""
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "cyxwiz-sandbox"); err == nil {
			big = d
			t.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	tests := []struct {
		name   string
		args   []string
		reason string
		bigFS  bool
	}{
		{"one big file", []string{"fill", "/out/big", "100"}, compute.ReasonDisk, false},
		{"sparse file", []string{"sparse", "/out/sparse", fmt.Sprint(int64(1) << 40)}, compute.ReasonDisk, false},
		{"many files", []string{"files", "/out", fmt.Sprint(testMaxEntries + 10)}, compute.ReasonDisk, false},
		{"churn within the bound", []string{"churn", "/out/tmp", "8", "40"}, "", false},
		{"files renamed onto themselves", []string{"selfrename", "100", "1"}, compute.ReasonDisk, false},
		{"a write at the largest offset", []string{"farwrite", "/out/far"}, compute.ReasonDisk, true},
		{"file at the bound", []string{"fill", "/out/fits", "63"}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jt := newJobTree(t)
			if tt.bigFS && big != "" {
				jt = newJobTreeIn(t, filepath.Join(big, tt.name))
			}
			o, out := runGuest(t, e, jt, tt.args...)
			if o.Reason != tt.reason {
				t.Fatalf("reason %q (%s), want %q\n%.500s", o.Reason, o.Detail, tt.reason, out)
			}
		})
	}
}
