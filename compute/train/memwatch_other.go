//go:build !linux

package train

// memoryWatch does nothing where the system does not report a process's
// memory as Linux does: the worker's own soft limit (ServeWorker's
// -memory-limit) is then the only bound.
type memoryWatch struct{}

func watchMemory(int, int64, func()) *memoryWatch { return &memoryWatch{} }

func (w *memoryWatch) stop() (int64, bool) { return 0, false }
