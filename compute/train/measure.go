package train

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/cyxwiz/cyxwiz/trainspec"
)

// MeasureDataset measures the dataset in dir (a folder, or a single file)
// for a memory estimate, reading IDX headers and counting CSV rows; no
// file may expand to more than limit bytes (0: DefaultMaxDataBytes).
func MeasureDataset(dir string, d trainspec.Dataset, limit int64) (trainspec.DatasetSize, error) {
	return MeasureDatasetWith(func(name string) (io.ReadCloser, error) {
		f, _, err := openData(dir, name, dataLimit(limit))
		return f, err
	}, d, limit)
}

// MeasureDatasetWith is MeasureDataset over files that open opens by the
// names the spec gives them, gzip'd or not: a requester measures a dataset
// in its content store with it.
func MeasureDatasetWith(open func(name string) (io.ReadCloser, error), d trainspec.Dataset, limit int64) (trainspec.DatasetSize, error) {
	limit = dataLimit(limit)
	var size trainspec.DatasetSize
	switch d.Format {
	case trainspec.DatasetIDX:
		for _, name := range []string{d.TrainImages, d.TestImages} {
			if name == "" {
				continue
			}
			n, f, err := measureIDX(open, name, limit)
			if err != nil {
				return size, err
			}
			size.Examples += n
			size.Features = f
		}
	case trainspec.DatasetCSV:
		size.CSV = true
		for _, name := range []string{d.TrainFile, d.TestFile} {
			if name == "" {
				continue
			}
			n, f, err := measureCSV(open, name, d.Header, limit)
			if err != nil {
				return size, err
			}
			size.Examples += n
			size.Features = max(size.Features, f)
		}
	default:
		return size, dataErr("format %q is not idx or csv", d.Format)
	}
	return size, nil
}

func dataLimit(limit int64) int64 {
	if limit <= 0 {
		return DefaultMaxDataBytes
	}
	return limit
}

// openMeasured opens a dataset file for measuring, un-gzipping it.
func openMeasured(open func(string) (io.ReadCloser, error), name string, limit int64) (io.Reader, func(), error) {
	rc, err := open(name)
	if err != nil {
		if errors.Is(err, ErrDataset) {
			return nil, nil, err
		}
		return nil, nil, dataErr("%s: %v", name, err)
	}
	br := bufio.NewReaderSize(rc, 64<<10)
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			rc.Close()
			return nil, nil, dataErr("%s: %v", name, err)
		}
		return limitReader(zr, limit, name), func() { rc.Close() }, nil
	}
	return limitReader(br, limit, name), func() { rc.Close() }, nil
}

// measureIDX reads an IDX images file's header: its examples and the
// features of each.
func measureIDX(open func(string) (io.ReadCloser, error), name string, limit int64) (n, features int64, err error) {
	r, done, err := openMeasured(open, name, limit)
	if err != nil {
		return 0, 0, err
	}
	defer done()
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil || hdr[0] != 0 || hdr[1] != 0 || hdr[2] != 0x08 || hdr[3] != 3 {
		return 0, 0, dataErr("%s: not an IDX file of unsigned bytes in 3 dimensions", name)
	}
	var dims [3]uint32
	if err := binary.Read(r, binary.BigEndian, &dims); err != nil {
		return 0, 0, dataErr("%s: truncated header", name)
	}
	n, features = int64(dims[0]), int64(dims[1])*int64(dims[2])
	if features > 0 && n > limit/features {
		return 0, 0, dataErr("%s: %v is more than the job's memory allows", name, dims)
	}
	return n, features, nil
}

// measureCSV counts a CSV file's rows (not empty, after the header) and
// the features of its first row.
func measureCSV(open func(string) (io.ReadCloser, error), name string, header bool, limit int64) (rows, features int64, err error) {
	r, done, err := openMeasured(open, name, limit)
	if err != nil {
		return 0, 0, err
	}
	defer done()
	buf := make([]byte, 256<<10)
	features = -1
	var commas int64
	skipHeader, filled := header, false
	endLine := func() {
		switch {
		case !filled:
		case skipHeader:
			skipHeader = false
		default:
			if features < 0 {
				features = commas // the columns but the label's
			}
			rows++
		}
		filled, commas = false, 0
	}
	quoted := false // inside a quoted field, where commas and line ends are data
	for {
		n, err := r.Read(buf)
		for _, c := range buf[:n] {
			switch {
			case c == '"':
				quoted = !quoted
				filled = true
			case quoted:
			case c == '\n':
				endLine()
			case c == '\r':
			case c == ',':
				commas++
				filled = true
			default:
				filled = true
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, 0, err
		}
	}
	endLine()
	if rows == 0 {
		return 0, 0, fmt.Errorf("%w: %s holds no examples", ErrDataset, name)
	}
	return rows, features, nil
}
