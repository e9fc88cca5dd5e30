package pgtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBinDir(t *testing.T) {
	if _, err := binDir(t.TempDir(), "/nonexistent/*/bin/initdb"); err == nil || !strings.Contains(err.Error(), "apt-get install postgresql") {
		t.Errorf("binDir of a folder without initdb: %v, want a hint to install postgresql", err)
	}
	t.Setenv("PATH", t.TempDir())
	if _, err := binDir("", "/nonexistent/*/bin/initdb"); err == nil || !strings.Contains(err.Error(), "apt-get install postgresql") {
		t.Errorf("binDir with no binaries anywhere: %v, want a hint to install postgresql", err)
	}
	root := t.TempDir()
	for _, v := range []string{"9", "15", "13"} {
		dir := filepath.Join(root, v, "bin")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "initdb"), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	got, err := binDir("", filepath.Join(root, "*", "bin", "initdb"))
	if want := filepath.Join(root, "15", "bin"); err != nil || got != want {
		t.Errorf("binDir = %q, %v; want the highest version, %q", got, err, want)
	}
}
