package train

import (
	"bytes"
	"os"
	"strconv"
	"sync"
	"time"
)

// memoryPoll is how often a worker's memory is read. A worker that
// allocates as fast as it can passes its limit by what it touches in
// that time before it is stopped.
const memoryPoll = 20 * time.Millisecond

// memoryWatch reads a process's anonymous resident memory (its heap and
// stacks, not the program's mapped files) until stopped, and calls kill
// once it passes the limit.
type memoryWatch struct {
	done chan struct{}
	wg   sync.WaitGroup

	mu   sync.Mutex
	peak int64
	over bool
}

func watchMemory(pid int, limit int64, kill func()) *memoryWatch {
	w := &memoryWatch{done: make(chan struct{})}
	path := "/proc/" + strconv.Itoa(pid) + "/status"
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(memoryPoll)
		defer t.Stop()
		for {
			rss, ok := anonResident(path)
			if ok {
				w.mu.Lock()
				w.peak = max(w.peak, rss)
				fire := rss > limit && !w.over
				if fire {
					w.over = true
				}
				w.mu.Unlock()
				if fire {
					kill()
				}
			}
			select {
			case <-w.done:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// stop ends the watch and returns the peak seen and whether the limit was
// passed.
func (w *memoryWatch) stop() (peak int64, over bool) {
	close(w.done)
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.peak, w.over
}

// anonResident reads RssAnon from a /proc/PID/status file, in bytes.
func anonResident(path string) (int64, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	return parseRssAnon(data)
}

func parseRssAnon(status []byte) (int64, bool) {
	_, rest, ok := bytes.Cut(status, []byte("RssAnon:"))
	if !ok {
		return 0, false
	}
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) != 2 || string(f[1]) != "kB" {
		return 0, false
	}
	kb, err := strconv.ParseInt(string(f[0]), 10, 64)
	if err != nil {
		return 0, false
	}
	return kb << 10, true
}
