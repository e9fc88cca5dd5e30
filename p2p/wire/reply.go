package wire

import (
	"bufio"
	"fmt"
	"unicode/utf8"
)

// Code says how a message was taken.
type Code string

// Reply codes.
const (
	// CodeOK: the message was taken.
	CodeOK Code = "ok"
	// CodeClosed: a bid for an auction that is not open (over, or never
	// held).
	CodeClosed Code = "closed"
	// CodeFull: a bid that found the auction's queue of bids full.
	CodeFull Code = "full"
	// CodeFinal: a result for a job that has already ended; the sender
	// takes it as delivered and stops retrying.
	CodeFinal Code = "final"
	// CodeRejected: the message was refused for good; Reason says why, and
	// the sender does not retry it.
	CodeRejected Code = "rejected"
	// CodeFailed: the message was understood but could not be acted on now
	// (a ledger that failed, a node that is not an arbiter); Reason says
	// why.
	CodeFailed Code = "failed"
	// CodePayment: a call refused for its payment (no voucher, no budget
	// with room, a voucher refused); Reason says why, and the caller may
	// open a new budget and call again.
	CodePayment Code = "payment"
)

// MaxReasonBytes bounds a reply's reason; a longer one is cut.
const MaxReasonBytes = 1024

// MaxReplyBytes bounds a reply frame: a code and a reason of at most
// MaxReasonBytes, escaped as JSON.
const MaxReplyBytes = 8 << 10

// Reply answers one message.
type Reply struct {
	Code   Code   `json:"code"`
	Reason string `json:"reason,omitempty"`
}

// OK is the reply to a message that was taken.
var OK = Reply{Code: CodeOK}

// Refuse is the reply that refuses a message for good, for err.
func Refuse(err error) Reply { return Reply{Code: CodeRejected, Reason: err.Error()} }

// Err returns nil for CodeOK, else the reply as a *ReplyError.
func (r Reply) Err() error {
	if r.Code == CodeOK {
		return nil
	}
	return &ReplyError{Reply: r}
}

// ReplyError is a reply other than CodeOK, as an error.
type ReplyError struct{ Reply }

// Error says what the peer answered.
func (e *ReplyError) Error() string {
	if e.Reason == "" {
		return "peer answered " + string(e.Code)
	}
	return fmt.Sprintf("peer answered %s: %s", e.Code, e.Reason)
}

// WriteReply sends r as one frame, its reason cut to MaxReasonBytes.
func WriteReply(w *bufio.Writer, r Reply) error {
	r.Reason = Truncate(r.Reason, MaxReasonBytes)
	return WriteJSON(w, r)
}

// ReadReply reads one reply. A reply without a code is an error.
func ReadReply(r *bufio.Reader) (Reply, error) {
	var rep Reply
	if err := ReadJSON(r, MaxReplyBytes, &rep); err != nil {
		return Reply{}, err
	}
	if rep.Code == "" {
		return Reply{}, fmt.Errorf("bad reply: no code")
	}
	rep.Reason = Truncate(rep.Reason, MaxReasonBytes)
	return rep, nil
}

// Truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
