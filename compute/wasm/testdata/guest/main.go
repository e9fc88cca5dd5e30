// Command guest is a WASI test program for the executor tests. Its first
// argument picks what it does.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
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
	}
}
