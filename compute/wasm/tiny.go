package wasm

// TinyModule returns a minimal WASI command (213 bytes of hand-assembled
// WebAssembly) that writes "hello\n" to standard output. Benchmarks use it
// to measure the executor's own overhead; tests use it as a program that
// needs no toolchain to build.
//
//	(module
//	  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
//	  (memory (export "memory") 1)
//	  (data (i32.const 16) "hello\n")
//	  (func (export "_start")
//	    (i32.store (i32.const 0) (i32.const 16))  ;; iovec.buf
//	    (i32.store (i32.const 4) (i32.const 6))   ;; iovec.len
//	    (drop (call 0 (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
func TinyModule() []byte {
	return append([]byte(nil), tinyModule...)
}

var tinyModule = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
	// type section: (i32 i32 i32 i32) -> i32, () -> ()
	0x01, 0x0c, 0x02, 0x60, 0x04, 0x7f, 0x7f, 0x7f, 0x7f, 0x01, 0x7f, 0x60, 0x00, 0x00,
	// import section: wasi_snapshot_preview1.fd_write, type 0
	0x02, 0x23, 0x01,
	0x16, 'w', 'a', 's', 'i', '_', 's', 'n', 'a', 'p', 's', 'h', 'o', 't', '_', 'p', 'r', 'e', 'v', 'i', 'e', 'w', '1',
	0x08, 'f', 'd', '_', 'w', 'r', 'i', 't', 'e',
	0x00, 0x00,
	// function section: one function of type 1
	0x03, 0x02, 0x01, 0x01,
	// memory section: one memory, min 1 page
	0x05, 0x03, 0x01, 0x00, 0x01,
	// export section: "memory" (memory 0), "_start" (func 1)
	0x07, 0x13, 0x02,
	0x06, 'm', 'e', 'm', 'o', 'r', 'y', 0x02, 0x00,
	0x06, '_', 's', 't', 'a', 'r', 't', 0x00, 0x01,
	// code section
	0x0a, 0x1d, 0x01, 0x1b, 0x00,
	0x41, 0x00, 0x41, 0x10, 0x36, 0x02, 0x00,
	0x41, 0x04, 0x41, 0x06, 0x36, 0x02, 0x00,
	0x41, 0x01, 0x41, 0x00, 0x41, 0x01, 0x41, 0x08, 0x10, 0x00, 0x1a,
	0x0b,
	// data section: "hello\n" at 16
	0x0b, 0x0c, 0x01, 0x00, 0x41, 0x10, 0x0b, 0x06, 'h', 'e', 'l', 'l', 'o', '\n',
}
