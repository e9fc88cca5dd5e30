package indexdb

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
)

// Limit checks a page size: 0 means DefaultPageSize, anything outside
// [0, MaxPageSize] is ErrBadQuery.
func Limit(n int) (int, error) {
	switch {
	case n == 0:
		return DefaultPageSize, nil
	case n < 0 || n > MaxPageSize:
		return 0, fmt.Errorf("%w: limit %d is outside [0, %d]", ErrBadQuery, n, MaxPageSize)
	}
	return n, nil
}

// CheckFilter checks the length of a text filter named field.
func CheckFilter(field, s string) error {
	if len(s) > MaxFilterLen {
		return fmt.Errorf("%w: %s is longer than %d bytes", ErrBadQuery, field, MaxFilterLen)
	}
	if !Storable(s) {
		return fmt.Errorf("%w: %s is not UTF-8 text without NUL bytes", ErrBadQuery, field)
	}
	return nil
}

// Buckets checks a series query and says how many buckets it has: From
// before To, Bucket at least a minute, at most MaxSeriesPoints buckets.
func (q SeriesQuery) Buckets() (int, error) {
	if q.Bucket < time.Minute {
		return 0, fmt.Errorf("%w: bucket %v is under a minute", ErrBadQuery, q.Bucket)
	}
	if q.From.IsZero() || q.To.IsZero() || !q.From.Before(q.To) {
		return 0, fmt.Errorf("%w: from %v is not before to %v", ErrBadQuery, q.From, q.To)
	}
	if err := checkTime("from", q.From); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrBadQuery, err)
	}
	if err := checkTime("to", q.To); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrBadQuery, err)
	}
	span := q.To.Sub(q.From)
	n := span / q.Bucket
	if span%q.Bucket != 0 {
		n++
	}
	if n > MaxSeriesPoints {
		return 0, fmt.Errorf("%w: series of %d buckets, more than %d", ErrBadQuery, n, MaxSeriesPoints)
	}
	return int(n), nil
}

// PriceResource checks the Resource of a price series, "" meaning
// ResourceCPUSecond.
func (q SeriesQuery) PriceResource() (string, error) {
	switch q.Resource {
	case "", ResourceCPUSecond:
		return ResourceCPUSecond, nil
	case ResourceMinimum:
		return ResourceMinimum, nil
	}
	return "", fmt.Errorf("%w: resource %q is not %q or %q", ErrBadQuery, q.Resource, ResourceCPUSecond, ResourceMinimum)
}

// Cursor is the position a page ends at: the sort key of its last item.
// Kind names the listing it belongs to, so that one listing's cursor is
// refused by another.
type Cursor struct {
	Kind string `json:"k"`
	// Time is the item's time key in unix nanoseconds, if its order has one.
	Time int64 `json:"t,omitempty"`
	// Key is the item's string key.
	Key string `json:"i"`
}

// Encode makes the opaque token of a cursor.
func (c Cursor) Encode() string {
	b, _ := json.Marshal(c) // a struct of strings and an int cannot fail
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor reads a cursor of listing kind. "" is the start (ok false);
// anything that is not a cursor of that kind is ErrBadQuery.
func DecodeCursor(kind, s string) (c Cursor, ok bool, err error) {
	if s == "" {
		return Cursor{}, false, nil
	}
	if len(s) > MaxCursorLen {
		return Cursor{}, false, fmt.Errorf("%w: cursor longer than %d bytes", ErrBadQuery, MaxCursorLen)
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, false, fmt.Errorf("%w: cursor is not base64: %w", ErrBadQuery, err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return Cursor{}, false, fmt.Errorf("%w: cursor does not decode: %w", ErrBadQuery, err)
	}
	if c.Kind != kind {
		return Cursor{}, false, fmt.Errorf("%w: cursor of %q given to %q", ErrBadQuery, c.Kind, kind)
	}
	if c.Key == "" || !Storable(c.Key) {
		return Cursor{}, false, fmt.Errorf("%w: cursor without a key of text", ErrBadQuery)
	}
	return c, true, nil
}
