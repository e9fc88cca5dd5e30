package content_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/content"
)

// TestSlowUploadHoldsNothingUp: an upload whose client stalls mid-body
// is spooled without the store's lock, so garbage collection and other
// adds go on meanwhile.
func TestSlowUploadHoldsNothingUp(t *testing.T) {
	p := newPeer(t, testConfig())
	ctx := context.Background()
	pr, pw := io.Pipe()
	upDone := make(chan error, 1)
	go func() {
		_, err := p.store.AddReader(ctx, "slow.bin", pr, 2<<20, nil)
		upDone <- err
	}()
	pw.Write(make([]byte, 1<<20)) // half, then the client stalls
	gcDone := make(chan error, 1)
	go func() { _, err := p.store.GC(ctx); gcDone <- err }()
	select {
	case err := <-gcDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("garbage collection waited for a stalled upload")
	}
	if _, err := p.store.Add(ctx, randomFile(t, t.TempDir(), "small", 100), nil); err != nil {
		t.Fatal(err)
	}
	pw.Write(make([]byte, 1<<20))
	pw.Close()
	if err := <-upDone; err != nil {
		t.Fatalf("the upload, once its bytes came: %v", err)
	}
}

// TestConcurrentUploadsKeepTheQuota: uploads that each fit the quota
// alone cannot pass it together: each reserves its room first.
func TestConcurrentUploadsKeepTheQuota(t *testing.T) {
	cfg := testConfig()
	cfg.QuotaMiB = 2
	p := newPeer(t, cfg)
	ctx := context.Background()
	const size = 700 << 10 // its spool and its blocks: 1.4 MiB of the 2
	var wg sync.WaitGroup
	errs := make([]error, 2)
	pws := make([]*io.PipeWriter, 2)
	started := make(chan struct{}, 2)
	for i := range pws {
		pr, pw := io.Pipe()
		pws[i] = pw
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = p.store.AddReader(ctx, "f"+string(rune('a'+i)), &signalReader{r: pr, first: started}, size, nil)
		}()
	}
	// The first upload to reserve is read; the second is refused before
	// it reads a byte, or, when it reserved first, the first is.
	data := make([]byte, size)
	rand.Read(data)
	done := make(chan int, 2)
	for i, pw := range pws {
		go func() {
			if _, err := pw.Write(data); err == nil {
				pw.Close()
			}
			done <- i
		}()
	}
	<-started
	wg.Wait()
	for _, pw := range pws {
		pw.CloseWithError(errors.New("test over"))
	}
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, content.ErrQuota):
			t.Errorf("an upload failed with %v, want ErrQuota or success", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d uploads succeeded, want exactly 1 (%v)", ok, errs)
	}
	if used, _ := p.store.DiskUsage(ctx); used > 2<<20 {
		t.Errorf("store is over its quota: %d bytes", used)
	}
}

// signalReader tells first when its first byte is read.
type signalReader struct {
	r     io.Reader
	first chan struct{}
	once  sync.Once
}

func (s *signalReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		s.once.Do(func() { s.first <- struct{}{} })
	}
	return n, err
}

// TestUploadBounds: archives made to take memory or disk with names,
// depth or long paths are refused early, with an error that names the
// upload and not the daemon's folders, and leave no spool.
func TestUploadBounds(t *testing.T) {
	p := newPeer(t, testConfig())
	comp := strings.Repeat("n", 255)
	deep := func(depth int) []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		name := comp
		for range depth {
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755, Format: tar.FormatPAX})
			name += "/" + comp
		}
		tw.Close()
		return buf.Bytes()
	}
	for name, c := range map[string]struct {
		archive []byte
		want    string
	}{
		"long paths": {deep(20), "longer than 3072 bytes"},
	} {
		_, err := p.store.AddTar(context.Background(), "deep", bytes.NewReader(c.archive), 0, nil)
		if !errors.Is(err, content.ErrBadUpload) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want ErrBadUpload mentioning %q", name, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), p.dir) {
			t.Errorf("%s: the error names the daemon's folder: %v", name, err)
		}
		if len(err.Error()) > 1000 {
			t.Errorf("%s: a %d-byte error", name, len(err.Error()))
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	name := "d"
	for range content.MaxGetDepth + 2 {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755})
		name += "/d"
	}
	tw.Close()
	if _, err := p.store.AddTar(context.Background(), "deep", &buf, 0, nil); !errors.Is(err, content.ErrBadUpload) || !strings.Contains(err.Error(), "folders deep") {
		t.Errorf("a folder %d deep: %v", content.MaxGetDepth+2, err)
	}
	if entries, _ := os.ReadDir(filepath.Join(p.dir, "uploads")); len(entries) > 0 {
		t.Errorf("spools left behind: %v", entries)
	}
}
