package jobs

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/cyxwiz/cyxwiz/p2p/wire"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/libp2p/go-libp2p/core/network"
)

// A job's output goes from the provider to the requester as LogLine
// frames on wire.LogProtocol. Each side keeps at most Config.MaxLogBytes of it
// per job, then notes the cut and drops the rest; the job goes on.
const (
	// maxLogFrame bounds one frame of the log stream, on both sides.
	maxLogFrame = 64 << 10
	// maxLogChunk bounds the output bytes of one frame: JSON writes a byte
	// as six at most ("\u00XX", or "\ufffd" for invalid UTF-8), so a chunk
	// and its fields stay within maxLogFrame.
	maxLogChunk = 8 << 10
	// tailBytes is how much of the end of the output a result carries.
	tailBytes = 4096
	// logDrain bounds the wait for the last lines to reach the requester
	// once the job is done, before its result is delivered.
	logDrain = time.Second
	// logRedial is the first pause before the stream is opened again after
	// it failed; lines meanwhile are dropped (the log CID has them all).
	logRedial = time.Second
	// logOpen bounds opening the stream, and logWrite each frame's write.
	logOpen  = 10 * time.Second
	logWrite = 10 * time.Second
)

// truncatedNote ends a log that reached its limit.
func truncatedNote(limit int64) string {
	return fmt.Sprintf("\n[cyxwiz: the job's output passed the log limit of %s; the rest is not kept]\n", market.FormatBytes(limit))
}

// logSink keeps a job's output on the provider: a file of at most the
// limit, the tail, and a live stream to the requester that never blocks
// the job nor, for more than logDrain, its result.
type logSink struct {
	c     *core
	j     *Job
	path  string
	limit int64

	mu        sync.Mutex
	f         *os.File
	written   int64
	truncated bool
	last      []byte
	closed    bool
	send      chan LogLine
	done      chan struct{}
	// ctx ends forward: when the node stops, or when the drain takes too
	// long; it cuts the stream then, and a stream being opened.
	ctx    context.Context
	cancel context.CancelFunc
}

func newLogSink(c *core, j *Job, path string) *logSink {
	ensureDir(filepath.Dir(path))
	f, err := os.Create(path)
	if err != nil {
		c.log.Warn("job log file", "job", j.ID, "error", err)
	}
	l := &logSink{c: c, j: j, path: path, limit: c.cfg.MaxLogBytes, f: f,
		send: make(chan LogLine, 256), done: make(chan struct{})}
	l.ctx, l.cancel = context.WithCancel(c.ctx)
	c.spawn(l.forward)
	return l
}

// stream is a writer for one of the job's streams (stdout, stderr, metrics).
func (l *logSink) stream(name string) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.closed {
			return len(p), nil
		}
		if name == MetricsStream {
			// Metrics are kept as their own output, not in the log.
			l.queue(name, p)
			return len(p), nil
		}
		l.last = append(l.last, p...)
		if len(l.last) > tailBytes {
			l.last = l.last[len(l.last)-tailBytes:]
		}
		if l.truncated {
			return len(p), nil
		}
		keep := p
		if room := l.limit - l.written; int64(len(p)) > room {
			keep = p[:room]
			l.truncated = true
		}
		if l.f != nil {
			l.f.Write(keep)
		}
		l.written += int64(len(keep))
		l.queue(name, keep)
		if l.truncated {
			note := truncatedNote(l.limit)
			if l.f != nil {
				l.f.WriteString(note)
			}
			l.queue(name, []byte(note))
		}
		return len(p), nil
	})
}

// queue hands p to the live stream in chunks that fit a frame, cut on
// character boundaries; what does not fit the stream's buffer is dropped:
// the live stream is best effort, the log CID has everything kept. The
// caller holds l.mu.
func (l *logSink) queue(name string, p []byte) {
	for len(p) > 0 {
		n := min(len(p), maxLogChunk)
		for n < len(p) && n > maxLogChunk-utf8.UTFMax && !utf8.RuneStart(p[n]) {
			n--
		}
		select {
		case l.send <- LogLine{JobID: l.j.ID, Attempt: l.j.Attempt, Stream: name, Data: string(p[:n])}:
		default:
		}
		p = p[n:]
	}
}

// forward streams log lines to the requester over one stream, opened
// again after a pause when it fails.
func (l *logSink) forward() {
	defer close(l.done)
	var (
		s       network.Stream
		w       *bufio.Writer
		stop    = func() bool { return false }
		retryAt time.Time
		pause   = logRedial
	)
	defer func() {
		stop()
		if s != nil {
			s.Close()
		}
	}()
	for {
		var line LogLine
		var ok bool
		select {
		case line, ok = <-l.send:
		case <-l.ctx.Done():
			return
		}
		if !ok {
			return
		}
		if w == nil {
			if time.Now().Before(retryAt) {
				continue
			}
			info, err := addrInfo(l.j.Requester, l.j.RequesterAddrs)
			if err != nil {
				return
			}
			st, _, bw, err := l.c.newStream(l.ctx, info.ID, wire.LogProtocol, logOpen)
			if err != nil {
				retryAt, pause = time.Now().Add(pause), min(2*pause, 30*time.Second)
				continue
			}
			st.SetDeadline(time.Time{}) // each write has its own
			s, w = st, bw
			stop = context.AfterFunc(l.ctx, func() { st.Reset() })
		}
		data, _ := json.Marshal(line)
		s.SetWriteDeadline(time.Now().Add(logWrite))
		if err := wire.WriteFrame(w, data); err != nil {
			stop()
			s.Reset()
			s, w = nil, nil
			retryAt, pause = time.Now().Add(pause), min(2*pause, 30*time.Second)
		}
	}
}

// close stops taking output and gives the stream logDrain to send what is
// queued, then cuts it.
func (l *logSink) close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	close(l.send)
	l.mu.Unlock()
	select {
	case <-l.done:
	case <-time.After(logDrain):
		// A slow requester, or one that never answers: cut the stream,
		// and a stream being opened, so that forward returns at once.
		l.cancel()
		<-l.done
	}
	l.cancel()
}

func (l *logSink) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.last)
}

// logReceiver keeps, on the requester, the output providers stream.
type logReceiver struct {
	*core

	mu   sync.Mutex
	logs map[string]*requesterLog // jobs with a stream open
}

func newLogReceiver(c *core) *logReceiver {
	return &logReceiver{core: c, logs: map[string]*requesterLog{}}
}

// requesterLog is the log of one job on the requester: the file, what it
// holds, and the one stream allowed to add to it. Every stream of the job
// writes under mu, so the limit holds however many a provider opens.
type requesterLog struct {
	mu        sync.Mutex
	stream    network.Stream // the live stream; others write nothing
	f         *os.File
	written   int64
	truncated bool
	refs      int // handlers holding it; the last closes the file
}

// attachLog makes s the live log stream of a job, cutting the one before.
func (lr *logReceiver) attachLog(job string, s network.Stream) *requesterLog {
	lr.mu.Lock()
	rl := lr.logs[job]
	if rl == nil {
		rl = &requesterLog{}
		lr.logs[job] = rl
	}
	rl.refs++
	lr.mu.Unlock()
	rl.mu.Lock()
	old := rl.stream
	rl.stream = s
	rl.mu.Unlock()
	if old != nil {
		old.Reset()
	}
	return rl
}

// detachLog lets go of a job's log; the last handler closes its file.
func (lr *logReceiver) detachLog(job string, rl *requesterLog, s network.Stream) {
	lr.mu.Lock()
	rl.refs--
	last := rl.refs == 0
	if last {
		delete(lr.logs, job)
	}
	lr.mu.Unlock()
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if rl.stream == s {
		rl.stream = nil
	}
	if last && rl.f != nil {
		rl.f.Close()
		rl.f = nil
	}
}

// append writes what fits of data to the log and reports what was kept;
// ok is false once s is no longer the live stream or the file cannot be
// written.
func (rl *requesterLog) append(c *core, job string, s network.Stream, data string) (kept string, ok bool) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if rl.stream != s {
		return "", false
	}
	if rl.f == nil {
		if err := ensureDir(c.logDir()); err != nil {
			return "", false
		}
		f, err := os.OpenFile(c.LogPath(job), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return "", false
		}
		rl.f = f
		if fi, err := f.Stat(); err == nil {
			rl.written = fi.Size()
			rl.truncated = rl.written >= c.cfg.MaxLogBytes
		}
	}
	if rl.truncated {
		return "", true
	}
	if room := c.cfg.MaxLogBytes - rl.written; int64(len(data)) > room {
		data = data[:room] + truncatedNote(c.cfg.MaxLogBytes)
		rl.truncated = true
	}
	n, err := rl.f.WriteString(data)
	rl.written += int64(n)
	return data[:n], err == nil
}

// handleLogs appends a provider's streamed output to the job's log, up to
// the log limit, and passes it to subscribers; a frame for a job that is
// over ends the stream, and one from a peer that does not run the job
// resets it.
func (lr *logReceiver) handleLogs(s network.Stream) {
	defer s.Close()
	r := bufio.NewReader(s)
	var (
		rl      *requesterLog
		metrics int64
		job     string // the job this stream carries, once known
	)
	defer func() {
		if rl != nil {
			lr.detachLog(job, rl, s)
		}
	}()
	for {
		s.SetReadDeadline(time.Now().Add(10 * time.Minute))
		data, err := wire.ReadFrame(r, maxLogFrame)
		if err != nil {
			return
		}
		var line LogLine
		if err := json.Unmarshal(data, &line); err != nil {
			s.Reset()
			return
		}
		j, err := lr.Get(line.JobID)
		if err != nil || j.Provider != s.Conn().RemotePeer().String() || j.Attempt != line.Attempt {
			s.Reset()
			return
		}
		if j.State.Final() {
			return // the job is over: what comes now is dropped
		}
		if job == "" {
			// One live stream per job: a provider opens a new one only
			// when the last failed, so an older one still open is cut,
			// and streams cannot share out the log limit among them.
			job = j.ID
			rl = lr.attachLog(job, s)
		} else if line.JobID != job {
			s.Reset()
			return
		}
		if line.Stream == MetricsStream {
			if metrics += int64(len(line.Data)); metrics <= lr.cfg.MaxLogBytes {
				lr.p.Notify(j.ID, line)
			}
			continue
		}
		kept, ok := rl.append(lr.core, job, s, line.Data)
		if !ok {
			s.Reset() // a stream that is no longer read must not hang its writer
			return
		}
		if kept != "" {
			line.Data = kept
			lr.p.Notify(j.ID, line)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
