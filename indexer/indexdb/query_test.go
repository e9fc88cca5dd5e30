package indexdb_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/indexer/indexdb"
)

func TestLimit(t *testing.T) {
	for _, c := range []struct {
		in, want int
		bad      bool
	}{{0, indexdb.DefaultPageSize, false}, {1, 1, false}, {indexdb.MaxPageSize, indexdb.MaxPageSize, false},
		{-1, 0, true}, {indexdb.MaxPageSize + 1, 0, true}} {
		got, err := indexdb.Limit(c.in)
		if got != c.want || errors.Is(err, indexdb.ErrBadQuery) != c.bad {
			t.Errorf("Limit(%d) = %d, %v; want %d, bad %v", c.in, got, err, c.want, c.bad)
		}
	}
}

func TestBuckets(t *testing.T) {
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		to     time.Duration
		bucket time.Duration
		want   int
		bad    bool
	}{
		{time.Hour, time.Minute, 60, false},
		{time.Hour + time.Second, time.Minute, 61, false},
		{indexdb.MaxSeriesPoints * time.Minute, time.Minute, indexdb.MaxSeriesPoints, false},
		{indexdb.MaxSeriesPoints*time.Minute + 1, time.Minute, 0, true},
		{time.Hour, time.Minute - 1, 0, true},
		{0, time.Minute, 0, true},
		{-time.Hour, time.Minute, 0, true},
	} {
		got, err := indexdb.SeriesQuery{From: from, To: from.Add(c.to), Bucket: c.bucket}.Buckets()
		if got != c.want || errors.Is(err, indexdb.ErrBadQuery) != c.bad {
			t.Errorf("Buckets(to +%v, bucket %v) = %d, %v; want %d, bad %v", c.to, c.bucket, got, err, c.want, c.bad)
		}
	}
}

func TestCursorRoundTrip(t *testing.T) {
	c := indexdb.Cursor{Kind: "jobs", Time: -42, Key: "job/1 'x'"}
	got, ok, err := indexdb.DecodeCursor("jobs", c.Encode())
	if err != nil || !ok || got != c {
		t.Fatalf("DecodeCursor(Encode(%+v)) = %+v, %v, %v", c, got, ok, err)
	}
	if _, ok, err := indexdb.DecodeCursor("jobs", ""); ok || err != nil {
		t.Fatalf(`DecodeCursor("") = %v, %v; want the start`, ok, err)
	}
	if _, _, err := indexdb.DecodeCursor("models", c.Encode()); !errors.Is(err, indexdb.ErrBadQuery) {
		t.Fatalf("a jobs cursor given to models: %v, want ErrBadQuery", err)
	}
}

// FuzzDecodeCursor checks that no input makes DecodeCursor panic, and that
// whatever it accepts encodes back to a cursor it accepts again.
func FuzzDecodeCursor(f *testing.F) {
	f.Add(indexdb.Cursor{Kind: "jobs", Time: 1, Key: "a"}.Encode())
	f.Add("")
	f.Add("!!")
	f.Fuzz(func(t *testing.T, s string) {
		c, ok, err := indexdb.DecodeCursor("jobs", s)
		if err != nil && !errors.Is(err, indexdb.ErrBadQuery) {
			t.Fatalf("DecodeCursor(%q): %v is not ErrBadQuery", s, err)
		}
		if ok {
			if _, ok2, err := indexdb.DecodeCursor("jobs", c.Encode()); !ok2 || err != nil {
				t.Fatalf("re-encoded cursor of %q refused: %v", s, err)
			}
		}
	})
}

func TestChecks(t *testing.T) {
	rec := []byte("record")
	good := indexdb.Receipt{ID: indexdb.RecordID(rec), JobID: "j", Record: rec}
	if err := good.Check(); err != nil {
		t.Fatalf("good receipt: %v", err)
	}
	for name, r := range map[string]indexdb.Receipt{
		"no job":       {ID: good.ID, Record: rec},
		"wrong id":     {ID: strings.Repeat("0", 64), JobID: "j", Record: rec},
		"huge price":   {ID: good.ID, JobID: "j", Record: rec, Price: 1 << 63},
		"NUL reason":   {ID: good.ID, JobID: "j", Record: rec, Reason: "a\x00"},
		"year 3000":    {ID: good.ID, JobID: "j", Record: rec, SeenAt: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)},
		"not hex":      {ID: strings.Repeat("z", 64), JobID: "j"},
		"invalid utf8": {ID: good.ID, JobID: "j\xff", Record: rec},
	} {
		if err := r.Check(); !errors.Is(err, indexdb.ErrBadRecord) {
			t.Errorf("receipt with %s: Check() = %v, want ErrBadRecord", name, err)
		}
	}
}
