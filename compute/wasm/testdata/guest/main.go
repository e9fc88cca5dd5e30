// Command guest is a WASI test program for the executor tests. Its first
// argument picks what it does.
package main

import (
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Println("hello from wasm")
		return
	}
	switch os.Args[1] {
	case "copy": // copy IN OUT
		data, err := os.ReadFile(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, "read:", err)
			os.Exit(1)
		}
		if err := os.WriteFile(os.Args[3], data, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "write:", err)
			os.Exit(1)
		}
		fmt.Printf("copied %d bytes\n", len(data))
	case "exit":
		code, _ := strconv.Atoi(os.Args[2])
		fmt.Fprintln(os.Stderr, "exiting with", code)
		os.Exit(code)
	case "loop":
		for i := 0; ; i++ {
			if i%100000000 == 0 {
				fmt.Println("still looping")
			}
		}
	case "alloc": // alloc MiB
		mib, _ := strconv.Atoi(os.Args[2])
		buf := make([][]byte, 0, mib)
		for range mib {
			b := make([]byte, 1<<20)
			b[0] = 1
			buf = append(buf, b)
		}
		fmt.Println("allocated", len(buf), "MiB")
	case "read": // read PATH: try to read any file
		f, err := os.Open(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, "open:", err)
			os.Exit(3)
		}
		data, _ := io.ReadAll(f)
		fmt.Printf("read %d bytes\n", len(data))
	case "write": // write PATH: try to write a file
		if err := os.WriteFile(os.Args[2], []byte("x"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "write:", err)
			os.Exit(3)
		}
		fmt.Println("wrote", os.Args[2])
	case "dial":
		conn, err := net.Dial("tcp", os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, "dial:", err)
			os.Exit(3)
		}
		conn.Close()
		fmt.Println("connected")
	case "env":
		fmt.Println(os.Getenv(os.Args[2]))
	case "clock":
		fmt.Println(time.Now().UnixNano())
	case "lines": // lines N: print N lines slowly
		n, _ := strconv.Atoi(os.Args[2])
		for i := range n {
			fmt.Println("line", i)
		}
	case "spin": // spin N IN OUT: N million iterations of busy work, then copy
		n, _ := strconv.Atoi(os.Args[2])
		x := uint64(1)
		for i := 0; i < n*1000000; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
		fmt.Println("spun", x%10)
		data, err := os.ReadFile(os.Args[3])
		if err != nil {
			fmt.Fprintln(os.Stderr, "read:", err)
			os.Exit(1)
		}
		if err := os.WriteFile(os.Args[4], data, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "write:", err)
			os.Exit(1)
		}
	case "panic":
		panic("guest panicked")
	case "try": // try OP:ARG[:ARG] ...: attempt each operation, print one line each
		for _, op := range os.Args[2:] {
			fmt.Println(attempt(op))
		}
	case "flood": // flood STREAM MiB CHUNK_KiB: write MiB of output in chunks
		mib, _ := strconv.Atoi(os.Args[3])
		kib, _ := strconv.Atoi(os.Args[4])
		w := os.Stdout
		if os.Args[2] == "stderr" {
			w = os.Stderr
		}
		chunk := []byte(strings.Repeat("x", kib<<10-1) + "\n")
		for range (mib << 10) / kib {
			if _, err := w.Write(chunk); err != nil {
				os.Exit(4)
			}
		}
	case "fill": // fill PATH MiB: write MiB to one file
		mib, _ := strconv.Atoi(os.Args[3])
		f, err := os.Create(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, "create:", err)
			os.Exit(3)
		}
		block := make([]byte, 1<<20)
		for range mib {
			if _, err := f.Write(block); err != nil {
				fmt.Fprintln(os.Stderr, "write:", err)
				os.Exit(3)
			}
		}
		if err := f.Close(); err != nil {
			os.Exit(3)
		}
	case "sparse": // sparse PATH BYTES: a file of that length, written at its end
		n, _ := strconv.ParseInt(os.Args[3], 10, 64)
		f, err := os.Create(os.Args[2])
		if err != nil {
			os.Exit(3)
		}
		if err := f.Truncate(n); err != nil {
			fmt.Fprintln(os.Stderr, "truncate:", err)
			os.Exit(3)
		}
		f.Close()
	case "files": // files DIR N: N empty files in DIR, made if need be
		n, _ := strconv.Atoi(os.Args[3])
		os.MkdirAll(os.Args[2], 0o755)
		for i := range n {
			if err := os.WriteFile(fmt.Sprintf("%s/f%d", os.Args[2], i), nil, 0o644); err != nil {
				fmt.Fprintln(os.Stderr, "create:", err)
				os.Exit(3)
			}
		}
	case "deep": // deep DIR N: N nested folders
		n, _ := strconv.Atoi(os.Args[3])
		p := os.Args[2]
		for range n {
			p += "/d"
			if err := os.Mkdir(p, 0o755); err != nil {
				fmt.Fprintln(os.Stderr, "mkdir:", err)
				os.Exit(3)
			}
		}
	case "selfrename": // selfrename N MiB: N files of MiB, each renamed onto itself
		n, _ := strconv.Atoi(os.Args[2])
		mib, _ := strconv.Atoi(os.Args[3])
		block := make([]byte, mib<<20)
		for i := range n {
			p := fmt.Sprintf("/out/f%d", i)
			if err := os.WriteFile(p, block, 0o644); err != nil {
				fmt.Fprintln(os.Stderr, "write:", err)
				os.Exit(3)
			}
			if err := syscall.Rename(p, p); err != nil {
				fmt.Fprintln(os.Stderr, "rename:", err)
				os.Exit(3)
			}
		}
	case "farwrite": // farwrite PATH: 4 KiB, a few bytes written at the largest offset, then 8 MiB more
		if err := os.WriteFile(os.Args[2]+".before", make([]byte, 4096), 0o644); err != nil {
			os.Exit(3)
		}
		f, err := os.Create(os.Args[2])
		if err != nil {
			os.Exit(3)
		}
		if _, err := f.WriteAt([]byte("0123456789abcdef"), math.MaxInt64-16); err != nil {
			fmt.Fprintln(os.Stderr, "write:", err)
			os.Exit(3)
		}
		f.Close()
		if err := os.WriteFile(os.Args[2]+".after", make([]byte, 8<<20), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "write:", err)
			os.Exit(3)
		}
	case "churn": // churn PATH MiB TIMES: rewrite a file, each time from scratch
		mib, _ := strconv.Atoi(os.Args[3])
		times, _ := strconv.Atoi(os.Args[4])
		block := make([]byte, mib<<20)
		for range times {
			if err := os.WriteFile(os.Args[2], block, 0o644); err != nil {
				fmt.Fprintln(os.Stderr, "write:", err)
				os.Exit(3)
			}
			if err := os.Remove(os.Args[2]); err != nil {
				os.Exit(3)
			}
		}
	}
}

// attempt runs one "op:arg[:arg]" and says whether it worked.
func attempt(spec string) string {
	op, rest, _ := strings.Cut(spec, ":")
	a, b, _ := strings.Cut(rest, ":")
	var err error
	switch op {
	case "read":
		var data []byte
		if data, err = os.ReadFile(a); err == nil {
			return fmt.Sprintf("%s: ok %q", spec, data)
		}
	case "list":
		var entries []os.DirEntry
		if entries, err = os.ReadDir(a); err == nil {
			return fmt.Sprintf("%s: ok %d entries", spec, len(entries))
		}
	case "write":
		err = os.WriteFile(a, []byte("pwned"), 0o644)
	case "mkdir":
		err = os.Mkdir(a, 0o755)
	case "symlink":
		err = os.Symlink(a, b)
	case "link":
		err = os.Link(a, b)
	case "rename":
		err = os.Rename(a, b)
	case "remove":
		err = os.Remove(a)
	case "chmod":
		err = os.Chmod(a, 0)
	default:
		err = fmt.Errorf("unknown op %q", op)
	}
	if err != nil {
		return fmt.Sprintf("%s: error %v", spec, err)
	}
	return spec + ": ok"
}
