package train

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/cyxwiz/cyxwiz/trainspec"
)

// The fuzzers below feed the dataset and safetensors readers bytes as a
// requester could put them in a job. Each runs on its seeds in plain go
// test; run them for longer with scripts/fuzz.sh.

// fuzzLimit is the most one dataset file may expand to in the fuzzers.
const fuzzLimit = 1 << 20

// readerBuffers is what opening a dataset file allocates whatever it holds:
// its read buffer and, for gzip, the decompressor.
const readerBuffers = 1<<20 + 64<<10

// allocatedBy returns how many bytes of heap fn allocated.
func allocatedBy(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func gzipped(tb testing.TB, b []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// idxFile encodes an IDX file of unsigned bytes.
func idxFile(dims []uint32, data []byte) []byte {
	b := []byte{0, 0, 0x08, byte(len(dims))}
	for _, d := range dims {
		b = binary.BigEndian.AppendUint32(b, d)
	}
	return append(b, data...)
}

func writeFile(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkExamples checks the shape of a loaded set of examples.
func checkExamples(t *testing.T, e *examples) {
	t.Helper()
	if e.N < 1 || len(e.X) != e.N*e.F || len(e.Y) != e.N {
		t.Fatalf("loaded %d examples of %d features with %d values and %d labels", e.N, e.F, len(e.X), len(e.Y))
	}
	if int64(len(e.X)) > fuzzLimit {
		t.Fatalf("loaded %d values from files of at most %d bytes", len(e.X), fuzzLimit)
	}
}

// FuzzIDX: loading an IDX pair never panics, fails only with ErrDataset,
// and allocates no more than its limit allows: each file's bytes (at most
// the limit, checked against the header before they are read) and their
// float32 values, beside fixed reader buffers.
func FuzzIDX(f *testing.F) {
	images := idxFile([]uint32{2, 3, 3}, []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 255})
	labels := idxFile([]uint32{2}, []byte{0, 1})
	f.Add(images, labels)
	f.Add(gzipped(f, images), gzipped(f, labels))
	f.Add(images, gzipped(f, labels))
	f.Add(images[:10], labels)
	f.Add(images[:len(images)-1], labels)
	f.Add(idxFile([]uint32{1 << 31, 1 << 31, 2}, nil), labels)
	f.Add(idxFile([]uint32{2, 1 << 10, 1 << 10}, nil), labels)
	f.Add(idxFile([]uint32{1, 1 << 10, 1 << 10}, nil), idxFile([]uint32{1}, nil))
	f.Add(idxFile([]uint32{0, 0xffffffff, 0xffffffff}, nil), idxFile([]uint32{0}, nil))
	f.Add(idxFile([]uint32{2, 0, 7}, nil), labels)
	const maxAlloc = 2*readerBuffers + 2*5*fuzzLimit
	dir := f.TempDir() // each fuzzing process runs one input at a time
	f.Fuzz(func(t *testing.T, images, labels []byte) {
		writeFile(t, dir, "images", images)
		writeFile(t, dir, "labels", labels)
		d := trainspec.Dataset{Format: trainspec.DatasetIDX, TrainImages: "images", TrainLabels: "labels", Scale: 1.0 / 255}
		var train *examples
		var err error
		if n := allocatedBy(func() { train, _, err = loadDataset(dir, d, fuzzLimit) }); n > maxAlloc {
			t.Fatalf("loading %d and %d bytes allocated %d bytes, more than %d", len(images), len(labels), n, maxAlloc)
		}
		if err != nil {
			if !errors.Is(err, ErrDataset) {
				t.Fatalf("bad IDX data: %v, want a dataset error", err)
			}
			return
		}
		checkExamples(t, train)
	})
}

// FuzzCSV: loading a CSV file never panics, fails only with ErrDataset,
// yields finite numbers only, and allocates within a fixed multiple of its
// limit: every value costs at least two bytes of text and four of float32,
// in arrays grown by appending, and a row may have only as many fields as
// the CSV reader's bookkeeping of them fits in the limit.
func FuzzCSV(f *testing.F) {
	table := []byte("x,y,label\n0.5,-1.25,0\n1e-3,2,1\n3,4,1\n")
	f.Add(table, true, int8(-1))
	f.Add(table, true, int8(0))
	f.Add(table[10:], false, int8(2))
	f.Add(gzipped(f, table), true, int8(-1))
	f.Add([]byte("1,2,0\n1,2\n"), false, int8(-1))
	f.Add([]byte("1,\"2\n"), false, int8(-1))
	f.Add([]byte("1,NaN,0\n1,Inf,1\n1e39,0,0\n"), false, int8(-1))
	f.Add([]byte("1,2,0\n"), false, int8(5))
	f.Add(gzipped(f, bytes.Repeat([]byte("0,0\n"), 1<<19)), false, int8(-1))
	f.Add(gzipped(f, bytes.Repeat([]byte(","), fuzzLimit-1)), false, int8(-1))
	f.Add(bytes.Repeat([]byte("\"\n\","), 1<<10), false, int8(-1))
	const maxAlloc = readerBuffers + 16*fuzzLimit
	dir := f.TempDir() // each fuzzing process runs one input at a time
	f.Fuzz(func(t *testing.T, data []byte, header bool, labelColumn int8) {
		writeFile(t, dir, "data.csv", data)
		d := trainspec.Dataset{Format: trainspec.DatasetCSV, TrainFile: "data.csv", Header: header, Scale: 1}
		if labelColumn >= 0 {
			col := int(labelColumn)
			d.LabelColumn = &col
		}
		var train *examples
		var err error
		if n := allocatedBy(func() { train, _, err = loadDataset(dir, d, fuzzLimit) }); n > maxAlloc {
			t.Fatalf("loading %d bytes allocated %d bytes, more than %d", len(data), n, maxAlloc)
		}
		if err != nil {
			if !errors.Is(err, ErrDataset) {
				t.Fatalf("bad CSV data: %v, want a dataset error", err)
			}
			return
		}
		checkExamples(t, train)
		if train.F < 1 {
			t.Fatalf("loaded examples of %d features", train.F)
		}
		for i, v := range append(slices.Clone(train.X), train.Y...) {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("value %d is %v", i, v)
			}
		}
	})
}

func safetensorsFile(tb testing.TB, tensors []NamedTensor, meta map[string]string) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := WriteSafetensors(&buf, tensors, meta); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// rawSafetensors is a file of the given header and data.
func rawSafetensors(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(b, header...), data...)
}

// FuzzSafetensors: ReadSafetensors never panics and allocates within a
// fixed multiple of its input (a header that claims more than the file
// holds is refused before it is allocated), and what it reads is written
// and read back to the same tensors and metadata.
func FuzzSafetensors(f *testing.F) {
	f.Add(safetensorsFile(f, []NamedTensor{
		{Name: "dense.weight", Shape: []int{2, 3}, Data: []float32{1, -2, 3.5, 0, float32(math.Inf(1)), float32(math.NaN())}},
		{Name: "dense.bias", Shape: []int{3}, Data: []float32{0.25, 0, -1}},
		{Name: "empty", Shape: []int{0, 4}, Data: nil},
	}, map[string]string{"epoch": "3", "format": "pt"}))
	f.Add(safetensorsFile(f, nil, nil))
	f.Add(binary.LittleEndian.AppendUint64(nil, 100<<20))
	f.Add(binary.LittleEndian.AppendUint64(nil, math.MaxUint64))
	f.Add(rawSafetensors(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 4)))
	f.Add(rawSafetensors(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[4,0]}}`, make([]byte, 4)))
	f.Add(rawSafetensors(`{"a":{"dtype":"F32","shape":[4611686018427387905],"data_offsets":[0,4]}}`, make([]byte, 4)))
	f.Add(rawSafetensors(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},`+
		`"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)))
	f.Add(rawSafetensors(`{"a":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}`, make([]byte, 2)))
	f.Fuzz(func(t *testing.T, data []byte) {
		var tensors []NamedTensor
		var meta map[string]string
		var err error
		maxAlloc := uint64(32*len(data) + 64<<10)
		if n := allocatedBy(func() { tensors, meta, err = ReadSafetensors(bytes.NewReader(data)) }); n > maxAlloc {
			t.Fatalf("reading %d bytes allocated %d bytes, more than %d", len(data), n, maxAlloc)
		}
		if err != nil {
			return
		}
		var values int
		for _, tn := range tensors {
			size := 1
			for _, d := range tn.Shape {
				if d < 0 {
					t.Fatalf("tensor %s has shape %v", tn.Name, tn.Shape)
				}
				size *= d
			}
			if size != len(tn.Data) {
				t.Fatalf("tensor %s of shape %v holds %d values", tn.Name, tn.Shape, len(tn.Data))
			}
			values += size
		}
		if values*4 > len(data) {
			t.Fatalf("read %d values from %d bytes", values, len(data))
		}
		back, backMeta, err := ReadSafetensors(bytes.NewReader(safetensorsFile(t, tensors, meta)))
		if err != nil {
			t.Fatalf("what was read, written again, does not read: %v", err)
		}
		if !maps.Equal(meta, backMeta) {
			t.Fatalf("metadata %v read back as %v", meta, backMeta)
		}
		if !slices.EqualFunc(tensors, back, sameTensor) {
			t.Fatalf("tensors %v read back as %v", tensors, back)
		}
	})
}

// sameTensor compares tensors value by value, NaNs included.
func sameTensor(a, b NamedTensor) bool {
	return a.Name == b.Name && slices.Equal(a.Shape, b.Shape) &&
		slices.EqualFunc(a.Data, b.Data, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) })
}
