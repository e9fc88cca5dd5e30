package train

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cyxwiz/cyxwiz/trainspec"
)

// DefaultMaxDataBytes bounds what one dataset file may expand to (gzip
// included) when the run sets no limit of its own.
const DefaultMaxDataBytes = 8 << 30

// examples is a set of labelled examples: X holds N rows of F features,
// Y one label (a class index or a target value) per row.
type examples struct {
	X    []float32
	Y    []float32
	N, F int
}

func (e *examples) row(i int) []float32 { return e.X[i*e.F : (i+1)*e.F] }

// ErrDataset marks a dataset that is not in the format its spec says.
var ErrDataset = errors.New("dataset")

func dataErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrDataset, fmt.Sprintf(format, args...))
}

// loadDataset reads the training and evaluation examples of d from dir;
// no file may expand to more than limit bytes.
func loadDataset(dir string, d trainspec.Dataset, limit int64) (train, eval *examples, err error) {
	switch d.Format {
	case trainspec.DatasetIDX:
		train, err = loadIDXPair(dir, d.TrainImages, d.TrainLabels, d.Scale, limit)
		if err == nil && d.TestImages != "" {
			eval, err = loadIDXPair(dir, d.TestImages, d.TestLabels, d.Scale, limit)
		}
	case trainspec.DatasetCSV:
		train, err = loadCSV(dir, d.TrainFile, d, limit)
		if err == nil && d.TestFile != "" {
			eval, err = loadCSV(dir, d.TestFile, d, limit)
		}
	default:
		err = dataErr("format %q is not idx or csv", d.Format)
	}
	if err != nil {
		return nil, nil, err
	}
	if eval != nil && eval.F != train.F {
		return nil, nil, dataErr("test examples have %d features, training examples %d", eval.F, train.F)
	}
	return train, eval, nil
}

// openData opens a dataset file, transparently un-gzipping it. A dataset
// that is a single file (not a folder) is that file whatever name the spec
// gives.
func openData(dir, name string, limit int64) (io.ReadCloser, string, error) {
	p := filepath.Join(dir, filepath.FromSlash(name))
	if fi, err := os.Lstat(dir); err == nil && fi.Mode().IsRegular() {
		p = dir
	}
	if err := insideDataset(dir, p); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, "", dataErr("%s is not in the dataset", name)
		}
		return nil, "", dataErr("%s: %v", name, err)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, "", fmt.Errorf("dataset: %w", err)
	}
	br := bufio.NewReaderSize(f, 1<<20)
	magic, _ := br.Peek(2)
	if bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, "", dataErr("%s: %v", name, err)
		}
		return readCloser{limitReader(zr, limit, name), f}, name, nil
	}
	return readCloser{limitReader(br, limit, name), f}, name, nil
}

// insideDataset checks that p is a regular file that resolves inside dir:
// a dataset may hold links, and a link must not read the provider's own
// files (or block on a pipe).
func insideDataset(dir, p string) error {
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return err
	}
	if real != root && !strings.HasPrefix(real, root+string(filepath.Separator)) {
		return errors.New("outside the dataset")
	}
	fi, err := os.Stat(real)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return errors.New("not a regular file")
	}
	return nil
}

// limitReader fails, rather than ends, once more than limit bytes are read.
func limitReader(r io.Reader, limit int64, name string) io.Reader {
	return &capped{r: r, left: limit, name: name}
}

type capped struct {
	r    io.Reader
	left int64
	name string
}

func (c *capped) Read(p []byte) (int, error) {
	if c.left <= 0 {
		// Exactly at the limit is fine: fail only if more follows.
		var probe [1]byte
		if n, err := io.ReadFull(c.r, probe[:]); n == 0 && err != nil {
			return 0, err
		}
		return 0, dataErr("%s expands to more than the job's memory allows", c.name)
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

type readCloser struct {
	io.Reader
	io.Closer
}

// readIDX reads an IDX file of unsigned bytes: its dimensions and data.
func readIDX(dir, name string, wantDims int, limit int64) ([]int, []byte, error) {
	rc, _, err := openData(dir, name, limit)
	if err != nil {
		return nil, nil, err
	}
	defer rc.Close()
	var hdr [4]byte
	if _, err := io.ReadFull(rc, hdr[:]); err != nil {
		return nil, nil, dataErr("%s: too short for an IDX file", name)
	}
	if hdr[0] != 0 || hdr[1] != 0 || hdr[2] != 0x08 {
		return nil, nil, dataErr("%s: not an IDX file of unsigned bytes (magic %x)", name, hdr)
	}
	if int(hdr[3]) != wantDims {
		return nil, nil, dataErr("%s: %d dimensions, want %d", name, hdr[3], wantDims)
	}
	dims := make([]int, wantDims)
	total := int64(1)
	for i := range dims {
		var d uint32
		if err := binary.Read(rc, binary.BigEndian, &d); err != nil {
			return nil, nil, dataErr("%s: truncated header", name)
		}
		dims[i] = int(d)
		if d != 0 && total > limit/int64(d) {
			return nil, nil, dataErr("%s: %v is more than the job's memory allows", name, dims[:i+1])
		}
		total *= int64(d)
		if total > limit {
			return nil, nil, dataErr("%s: %v is more than the job's memory allows", name, dims)
		}
	}
	data := make([]byte, total)
	if _, err := io.ReadFull(rc, data); err != nil {
		return nil, nil, dataErr("%s: holds fewer than the %d bytes its header promises", name, total)
	}
	return dims, data, nil
}

func loadIDXPair(dir, images, labels string, scale float64, limit int64) (*examples, error) {
	idims, pix, err := readIDX(dir, images, 3, limit)
	if err != nil {
		return nil, err
	}
	ldims, lab, err := readIDX(dir, labels, 1, limit)
	if err != nil {
		return nil, err
	}
	if idims[0] != ldims[0] {
		return nil, dataErr("%s has %d images, %s %d labels", images, idims[0], labels, ldims[0])
	}
	if idims[0] == 0 {
		return nil, dataErr("%s holds no examples", images)
	}
	e := &examples{N: idims[0], F: idims[1] * idims[2], X: make([]float32, len(pix)), Y: make([]float32, len(lab))}
	s := float32(scale)
	for i, p := range pix {
		e.X[i] = float32(p) * s
	}
	for i, l := range lab {
		e.Y[i] = float32(l)
	}
	return e, nil
}

func loadCSV(dir, name string, d trainspec.Dataset, limit int64) (*examples, error) {
	rc, _, err := openData(dir, name, limit)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	r := csv.NewReader(&columnLimit{r: rc, max: limit / csvFieldCost, name: name})
	r.ReuseRecord = true
	e := &examples{}
	line := 0
	for {
		rec, err := r.Read()
		line++
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, dataErr("%s: %v", name, err)
		}
		if line == 1 && d.Header {
			continue
		}
		if e.F == 0 {
			if len(rec) < 2 {
				return nil, dataErr("%s line %d: %d columns, need features and a label", name, line, len(rec))
			}
			e.F = len(rec) - 1
		}
		if len(rec) != e.F+1 {
			return nil, dataErr("%s line %d: %d columns, the first row has %d", name, line, len(rec), e.F+1)
		}
		label := len(rec) - 1
		if d.LabelColumn != nil {
			label = *d.LabelColumn
			if label >= len(rec) {
				return nil, dataErr("%s: label_column %d, but rows have %d columns", name, label, len(rec))
			}
		}
		for i, field := range rec {
			v, err := strconv.ParseFloat(field, 32)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, dataErr("%s line %d column %d: %q is not a number", name, line, i, field)
			}
			if i == label {
				e.Y = append(e.Y, float32(v))
			} else {
				e.X = append(e.X, float32(v*d.Scale))
			}
		}
		e.N++
	}
	if e.N == 0 {
		return nil, dataErr("%s holds no examples", name)
	}
	return e, nil
}

// csvFieldCost is about what encoding/csv keeps for each field of the
// record it reads (its string, offsets and position), whatever the field's
// length: a row of empty fields would cost many times its bytes.
const csvFieldCost = 64

// columnLimit fails once a CSV record has more than max fields. It sees the
// bytes before encoding/csv does, and tracks quotes so that a quoted comma
// or newline is not taken for a separator.
type columnLimit struct {
	r      io.Reader
	max    int64
	fields int64
	quoted bool
	name   string
}

func (c *columnLimit) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	for _, b := range p[:n] {
		switch {
		case b == '"':
			c.quoted = !c.quoted
		case c.quoted:
		case b == ',':
			if c.fields++; c.fields >= c.max {
				return 0, dataErr("%s has a row of more than %d columns", c.name, c.max)
			}
		case b == '\n':
			c.fields = 0
		}
	}
	return n, err
}

// checkLabels checks the labels against the model's output width.
func checkLabels(e *examples, loss string, classes int) error {
	if loss != trainspec.LossCrossEntropy {
		return nil
	}
	for i, y := range e.Y {
		if y != float32(int(y)) || y < 0 || int(y) >= classes {
			return dataErr("example %d has label %g; cross_entropy needs a class in 0..%d", i, y, classes-1)
		}
	}
	return nil
}

// split holds out the last fraction of a seeded permutation of e.
func split(e *examples, fraction float64, seed uint64) (train, eval *examples) {
	k := int(float64(e.N) * fraction)
	if k == 0 || k == e.N {
		return e, nil
	}
	perm := permutation(e.N, seed, 0xe7a1)
	take := func(idx []int) *examples {
		out := &examples{N: len(idx), F: e.F, X: make([]float32, 0, len(idx)*e.F), Y: make([]float32, 0, len(idx))}
		for _, i := range idx {
			out.X = append(out.X, e.row(i)...)
			out.Y = append(out.Y, e.Y[i])
		}
		return out
	}
	return take(perm[:e.N-k]), take(perm[e.N-k:])
}
