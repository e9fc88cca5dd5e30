package cyxwiz_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSystemdUnit checks contrib/systemd/cyxwiz.service with
// systemd-analyze verify, which must print nothing: it reports unknown keys
// and bad values only as warnings. The unit's binary path is pointed at an
// executable that exists here. Without systemd-analyze it checks the
// hardening settings only.
func TestSystemdUnit(t *testing.T) {
	unit, err := os.ReadFile("contrib/systemd/cyxwiz.service")
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, line := range strings.Split(string(unit), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			settings[k] = v
		}
	}
	for k, want := range map[string]string{
		"DynamicUser": "yes", "StateDirectory": "cyxwiz", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
		"ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes", "SystemCallFilter": "@system-service",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_NETLINK AF_UNIX", "Environment": "CYXWIZ_PATH=/var/lib/cyxwiz",
	} {
		if settings[k] != want {
			t.Errorf("%s=%q, want %q", k, settings[k], want)
		}
	}
	if _, ok := settings["MemoryDenyWriteExecute"]; ok {
		t.Error("MemoryDenyWriteExecute is set: wazero cannot compile WASM jobs under it")
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("no systemd-analyze here")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cyxwiz.service")
	if err := os.WriteFile(path, bytes.ReplaceAll(unit, []byte("/usr/local/bin/cyxwiz"), []byte(self)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestDockerfile checks that the Dockerfile builds with go.mod's Go version
// and through make's release target, whose command (a static, stamped
// build) make -n shows.
func TestDockerfile(t *testing.T) {
	dockerfile, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(gomod)
	if goLine == nil {
		t.Fatal("go.mod has no go line")
	}
	if want := "ARG GO_VERSION=" + string(goLine[1]); !strings.Contains(string(dockerfile), want+"\n") {
		t.Errorf("the Dockerfile lacks %q (go.mod's Go version)", want)
	}
	for _, want := range []string{"RUN make dist/cyxwiz-${TARGETOS}-${TARGETARCH}", "ENV CYXWIZ_PATH=/data", "USER cyxwiz", `ENTRYPOINT ["cyxwiz"]`, `CMD ["daemon"]`, "EXPOSE 4250/tcp 4250/udp"} {
		if !strings.Contains(string(dockerfile), want) {
			t.Errorf("the Dockerfile lacks %q", want)
		}
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make here")
	}
	out, err := exec.Command("make", "-n", "dist/cyxwiz-linux-arm64").CombinedOutput()
	if err != nil {
		t.Fatalf("make -n: %v\n%s", err, out)
	}
	for _, want := range []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64", "-trimpath", "-buildvcs=auto", "-o dist/cyxwiz-linux-arm64 ./cmd/cyxwiz"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("make dist/cyxwiz-linux-arm64 runs no %q:\n%s", want, out)
		}
	}
}
