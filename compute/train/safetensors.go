package train

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
)

// NamedTensor is one tensor of a safetensors file.
type NamedTensor struct {
	Name  string
	Shape []int
	Data  []float32
}

type safetensorsEntry struct {
	DType       string   `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// maxSafetensorsHeader bounds the JSON header a reader accepts.
const maxSafetensorsHeader = 100 << 20

// WriteSafetensors writes float32 tensors in the safetensors format: a
// little-endian header length, a JSON header (with meta as
// __metadata__), then the data, little-endian, in the order given.
func WriteSafetensors(w io.Writer, tensors []NamedTensor, meta map[string]string) error {
	header := map[string]any{}
	if len(meta) > 0 {
		header["__metadata__"] = meta
	}
	var off int64
	for _, t := range tensors {
		n := int64(len(t.Data)) * 4
		header[t.Name] = safetensorsEntry{DType: "F32", Shape: t.Shape, DataOffsets: [2]int64{off, off + n}}
		off += n
	}
	h, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("safetensors header: %w", err)
	}
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	var size [8]byte
	binary.LittleEndian.PutUint64(size[:], uint64(len(h)))
	if _, err := w.Write(size[:]); err != nil {
		return err
	}
	if _, err := w.Write(h); err != nil {
		return err
	}
	buf := make([]byte, 0, 1<<16)
	for _, t := range tensors {
		for _, v := range t.Data {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			if len(buf) == cap(buf) {
				if _, err := w.Write(buf); err != nil {
					return err
				}
				buf = buf[:0]
			}
		}
	}
	_, err = w.Write(buf)
	return err
}

// ReadSafetensors reads a safetensors file of float32 tensors, sorted by
// name, and its metadata.
func ReadSafetensors(r io.Reader) ([]NamedTensor, map[string]string, error) {
	var size [8]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, nil, fmt.Errorf("safetensors: %w", err)
	}
	n := binary.LittleEndian.Uint64(size[:])
	if n > maxSafetensorsHeader {
		return nil, nil, fmt.Errorf("safetensors: header of %d bytes is too large", n)
	}
	// Read rather than allocate what the header claims: the file may be shorter.
	h, err := io.ReadAll(io.LimitReader(r, int64(n)))
	if err == nil && uint64(len(h)) != n {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, nil, fmt.Errorf("safetensors header: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(h, &raw); err != nil {
		return nil, nil, fmt.Errorf("safetensors header: %w", err)
	}
	var meta map[string]string
	if m, ok := raw["__metadata__"]; ok {
		if err := json.Unmarshal(m, &meta); err != nil {
			return nil, nil, fmt.Errorf("safetensors metadata: %w", err)
		}
		delete(raw, "__metadata__")
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, nil, fmt.Errorf("safetensors data: %w", err)
	}
	var out []NamedTensor
	var used int64
	for name, m := range raw {
		var e safetensorsEntry
		if err := json.Unmarshal(m, &e); err != nil {
			return nil, nil, fmt.Errorf("safetensors %s: %w", name, err)
		}
		if e.DType != "F32" {
			return nil, nil, fmt.Errorf("safetensors %s: dtype %s, only F32 is read", name, e.DType)
		}
		count := int64(1)
		for _, d := range e.Shape {
			if d < 0 || d > 0 && count > int64(len(data))/4/int64(d) {
				return nil, nil, fmt.Errorf("safetensors %s: shape %v does not fit %d data bytes", name, e.Shape, len(data))
			}
			count *= int64(d)
		}
		lo, hi := e.DataOffsets[0], e.DataOffsets[1]
		if lo < 0 || hi > int64(len(data)) || hi-lo != count*4 {
			return nil, nil, fmt.Errorf("safetensors %s: offsets %v do not fit shape %v and %d data bytes", name, e.DataOffsets, e.Shape, len(data))
		}
		if used += hi - lo; used > int64(len(data)) {
			return nil, nil, fmt.Errorf("safetensors %s: tensors overlap", name)
		}
		t := NamedTensor{Name: name, Shape: e.Shape, Data: make([]float32, count)}
		for i := range t.Data {
			t.Data[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[lo+int64(i)*4:]))
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, meta, nil
}

// writeSafetensorsFile writes tensors to path atomically.
func writeSafetensorsFile(path string, tensors []NamedTensor, meta map[string]string) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	err = WriteSafetensors(f, tensors, meta)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return errors.Join(fmt.Errorf("write %s", path), err)
	}
	return nil
}
