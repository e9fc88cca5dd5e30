package logging

import (
	"bufio"
	"os"
	"sync"
)

var (
	stderrOnce sync.Once
	origStderr = os.Stderr
	stderrMu   sync.Mutex
)

// realStderr is the process's standard error, whether or not os.Stderr
// has been replaced by captureStderr's pipe.
func realStderr() *os.File {
	stderrMu.Lock()
	defer stderrMu.Unlock()
	return origStderr
}

// captureStderr replaces os.Stderr, once, by a pipe whose lines become
// records for stderrTarget: libraries that print to os.Stderr themselves
// (the stacks of the panics that libp2p, yamux and multistream recover)
// then follow the format too. Writers that took os.Stderr before this call
// keep the real one, as does the Go runtime, so a crash's report is never
// lost in the pipe. Should the pipe fail, os.Stderr stays as it is.
func captureStderr() {
	stderrOnce.Do(func() {
		r, w, err := os.Pipe()
		if err != nil {
			return
		}
		stderrMu.Lock()
		origStderr = os.Stderr
		os.Stderr = w
		stderrMu.Unlock()
		go func() {
			// A line longer than the buffer comes out in pieces, a record
			// each: the pipe must never stop being read.
			lw := &lineWriter{target: &stderrTarget}
			br := bufio.NewReaderSize(r, 64<<10)
			for {
				line, _, err := br.ReadLine()
				if err != nil {
					return
				}
				lw.Write(line)
			}
		}()
	})
}
