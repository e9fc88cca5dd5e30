//go:build !linux && !darwin && !openbsd

package packstore

import "os"

// writeVecAt writes the slices of bufs one after another at off, through
// one buffer where the system has no pwritev.
func writeVecAt(f *os.File, bufs [][]byte, off int64) error {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	buf := make([]byte, 0, n)
	for _, b := range bufs {
		buf = append(buf, b...)
	}
	_, err := f.WriteAt(buf, off)
	return err
}
