package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEveryIDIsVersioned(t *testing.T) {
	version := regexp.MustCompile(`^/cyxwiz/[a-z/]+/[0-9]+(\.[0-9]+\.[0-9]+)?$`)
	for _, id := range []string{JobsTopic, string(BidProtocol), string(AwardProtocol), string(ResultProtocol),
		string(LogProtocol), string(CancelProtocol), string(ArbiterProtocol), string(DAGProtocol)} {
		if !version.MatchString(id) {
			t.Errorf("%s has no version", id)
		}
	}
	if !version.MatchString(strings.TrimSuffix(CapacityKeyPrefix, "/")) {
		t.Errorf("capacity key prefix %s has no version", CapacityKeyPrefix)
	}
	if !strings.HasPrefix(CapacityKeyPrefix, "/"+DHTNamespace+"/") {
		t.Errorf("capacity key prefix %s is outside the namespace %s", CapacityKeyPrefix, DHTNamespace)
	}
}

func TestFrames(t *testing.T) {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	for _, msg := range []string{"", "one", strings.Repeat("x", 300)} {
		if err := WriteFrame(w, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	r := bufio.NewReader(&buf)
	for _, want := range []string{"", "one", strings.Repeat("x", 300)} {
		got, err := ReadFrame(r, 300)
		if err != nil || string(got) != want {
			t.Fatalf("frame %q, %v; want %q", got, err, want)
		}
	}
	if _, err := ReadFrame(r, 300); err == nil {
		t.Error("read past the last frame")
	}
}

func TestOversizedFrameRefusedFromItsLength(t *testing.T) {
	// A length of 2^62 with no bytes behind it: refused before any
	// allocation or read.
	var lenBuf [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(lenBuf[:], 1<<62)
	_, err := ReadFrame(bufio.NewReader(bytes.NewReader(lenBuf[:n])), 1<<20)
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("got %v, want ErrFrameTooLarge", err)
	}
	// A frame cut short is an error, not a short message.
	n = binary.PutUvarint(lenBuf[:], 10)
	if _, err := ReadFrame(bufio.NewReader(bytes.NewReader(append(lenBuf[:n], "abc"...))), 100); err == nil {
		t.Error("a truncated frame was read")
	}
}

func TestReplies(t *testing.T) {
	long := strings.Repeat("é", MaxReasonBytes) // two bytes a rune
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	for _, r := range []Reply{OK, {Code: CodeFull}, Refuse(errors.New(long))} {
		if err := WriteReply(w, r); err != nil {
			t.Fatal(err)
		}
	}
	r := bufio.NewReader(&buf)
	if rep, err := ReadReply(r); err != nil || rep != OK || rep.Err() != nil {
		t.Fatalf("ok reply: %+v %v", rep, err)
	}
	rep, err := ReadReply(r)
	var re *ReplyError
	if err != nil || !errors.As(rep.Err(), &re) || re.Code != CodeFull {
		t.Fatalf("full reply: %+v %v", rep, err)
	}
	rep, err = ReadReply(r)
	if err != nil || rep.Code != CodeRejected || len(rep.Reason) > MaxReasonBytes || !utf8.ValidString(rep.Reason) || rep.Reason == "" {
		t.Fatalf("long rejection: code %s, %d bytes, valid %v, %v", rep.Code, len(rep.Reason), utf8.ValidString(rep.Reason), err)
	}
}

func TestHostileReplies(t *testing.T) {
	frame := func(s string) *bufio.Reader {
		var buf bytes.Buffer
		w := bufio.NewWriter(&buf)
		WriteFrame(w, []byte(s))
		return bufio.NewReader(&buf)
	}
	for _, bad := range []string{"ok", `{}`, `{"reason":"x"}`, `{"code":`, `[]`} {
		if rep, err := ReadReply(frame(bad)); err == nil {
			t.Errorf("%q read as %+v", bad, rep)
		}
	}
	if _, err := ReadReply(frame(`{"code":"ok","reason":"` + strings.Repeat("a", MaxReplyBytes) + `"}`)); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("oversized reply: %v", err)
	}
	// An unknown code is not success.
	rep, err := ReadReply(frame(`{"code":"maybe"}`))
	if err != nil || rep.Err() == nil {
		t.Errorf("unknown code: %+v %v", rep, err)
	}
}

func TestTruncate(t *testing.T) {
	for _, c := range []struct {
		s    string
		n    int
		want string
	}{{"abc", 5, "abc"}, {"abc", 2, "ab"}, {"aé", 2, "a"}, {"é", 1, ""}, {"日本", 4, "日"}} {
		if got := Truncate(c.s, c.n); got != c.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", c.s, c.n, got, c.want)
		}
	}
}
