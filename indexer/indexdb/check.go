package indexdb

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// The range of times a Store holds: those whose unix nanoseconds fit in an
// int64. The zero time stands for "not set" and is stored as such.
var (
	minTime = time.Unix(0, math.MinInt64+1)
	maxTime = time.Unix(0, math.MaxInt64)
)

func checkTime(field string, t time.Time) error {
	if t.IsZero() {
		return nil
	}
	if t.Before(minTime) || t.After(maxTime) {
		return fmt.Errorf("%s %v is outside the range of unix nanoseconds", field, t)
	}
	return nil
}

func checkUint(field string, v uint64) error {
	if v > math.MaxInt64 {
		return fmt.Errorf("%s %d is over 2^63-1", field, v)
	}
	return nil
}

func checkKey(field, v string) error {
	if v == "" {
		return fmt.Errorf("%s is empty", field)
	}
	return checkText(field, v)
}

// checkText refuses text that a database cannot hold as text: invalid
// UTF-8, or a NUL byte (PostgreSQL refuses both).
func checkText(field string, vs ...string) error {
	for _, v := range vs {
		if !Storable(v) {
			return fmt.Errorf("%s %q is not UTF-8 text without NUL bytes", field, v)
		}
	}
	return nil
}

// Storable says whether a string can be stored as text: valid UTF-8 with no
// NUL byte. A key that is not can name no stored row.
func Storable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

func checkID(id string, record []byte) error {
	if len(id) != 64 {
		return fmt.Errorf("id %q is not a hex SHA-256", id)
	}
	if _, err := hex.DecodeString(id); err != nil {
		return fmt.Errorf("id %q is not a hex SHA-256", id)
	}
	if len(record) > 0 {
		sum := sha256.Sum256(record)
		if hex.EncodeToString(sum[:]) != id {
			return fmt.Errorf("id %s is not the SHA-256 of its record", id)
		}
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("%w: %w", ErrBadRecord, err)
		}
	}
	return nil
}

// RecordID is the ID of a record: the hex SHA-256 of its bytes.
func RecordID(record []byte) string {
	sum := sha256.Sum256(record)
	return hex.EncodeToString(sum[:])
}

// Check says whether a Store can hold the record: ErrBadRecord if not.
func (c Capacity) Check() error {
	var gpus []string
	for _, g := range c.GPUs {
		gpus = append(gpus, g.Model)
	}
	return firstErr(checkKey("peer", c.Peer), checkUint("seq", c.Seq), checkText("mint", c.Mint),
		checkText("gpu model", gpus...), checkText("executor", c.Executors...),
		checkTime("issued_at", c.IssuedAt), checkTime("expires_at", c.ExpiresAt), checkTime("seen_at", c.SeenAt),
		checkUint("price_per_cpu_second", c.PricePerCPUSecond), checkUint("price_minimum", c.PriceMinimum))
}

// Check says whether a Store can hold the announcement: ErrBadRecord if not.
func (a Announcement) Check() error {
	return firstErr(checkKey("job_id", a.JobID), checkUint("max_price", a.MaxPrice),
		checkText("text field", a.Requester, a.Kind, a.Mint),
		checkTime("issued_at", a.IssuedAt), checkTime("seen_at", a.SeenAt))
}

// Check says whether a Store can hold the receipt: ErrBadRecord if not.
func (r Receipt) Check() error {
	return firstErr(checkID(r.ID, r.Record), checkKey("job_id", r.JobID), checkUint("price", r.Price),
		checkText("text field", r.Requester, r.Provider, r.Kind, r.Outcome, r.Fault, r.Reason, r.Mint, r.EscrowState, r.EscrowTx),
		checkText("output", r.Outputs...),
		checkTime("started_at", r.StartedAt), checkTime("ended_at", r.EndedAt),
		checkTime("issued_at", r.IssuedAt), checkTime("seen_at", r.SeenAt))
}

// Check says whether a Store can hold the model: ErrBadRecord if not.
func (m Model) Check() error {
	var metrics []string
	var bad error
	for k, v := range m.Metrics {
		metrics = append(metrics, k)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			bad = fmt.Errorf("metric %q is %v", k, v)
		}
	}
	return firstErr(checkID(m.ID, m.Record), checkTime("published_at", m.PublishedAt), checkTime("seen_at", m.SeenAt),
		checkText("text field", m.Publisher, m.Name, m.Description, m.License, m.WeightsCID, m.JobID, m.ReceiptID),
		checkText("metric", metrics...), bad)
}

// Check says whether a Store can hold the escrow check: ErrBadRecord if
// not.
func (c EscrowCheck) Check() error {
	return firstErr(checkKey("receipt_id", c.ReceiptID), checkKey("state", c.State), checkText("detail", c.Detail),
		checkTime("checked_at", c.CheckedAt))
}
