package wire

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ErrFrameTooLarge is returned for a frame longer than the reader's bound.
var ErrFrameTooLarge = errors.New("frame too large")

// WriteFrame sends data as one frame, its length as a uvarint and then the
// bytes, and flushes w.
func WriteFrame(w *bufio.Writer, data []byte) error {
	var buf [binary.MaxVarintLen64]byte
	if _, err := w.Write(buf[:binary.PutUvarint(buf[:], uint64(len(data)))]); err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		return err
	}
	return w.Flush()
}

// ReadFrame reads one frame of at most limit bytes. A longer frame is
// refused from its length alone, before anything is allocated.
func ReadFrame(r *bufio.Reader, limit int) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > uint64(limit) {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrFrameTooLarge, n, limit)
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, err
	}
	return data, nil
}

// WriteJSON sends v as one frame of JSON.
func WriteJSON(w *bufio.Writer, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return WriteFrame(w, data)
}

// ReadJSON reads one frame of at most limit bytes and decodes its JSON
// into v.
func ReadJSON(r *bufio.Reader, limit int, v any) error {
	data, err := ReadFrame(r, limit)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("bad message: %w", err)
	}
	return nil
}
