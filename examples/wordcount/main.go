// Command wordcount is a sample CyxWiz job: it counts the words of every
// file under /in and writes the totals and the most frequent words to
// /out/counts.txt. Build it for the WASM executor with
//
//	GOOS=wasip1 GOARCH=wasm go build -o wordcount.wasm ./examples/wordcount
package main

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode"
)

func main() {
	top := 10
	counts := map[string]int{}
	words, lines, files := 0, 0, 0
	err := filepath.WalkDir("/in", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		files++
		fmt.Printf("reading %s\n", path)
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lines++
			for _, w := range strings.FieldsFunc(sc.Text(), func(r rune) bool { return !unicode.IsLetter(r) && r != '\'' }) {
				counts[strings.ToLower(w)]++
				words++
			}
		}
		return sc.Err()
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "wordcount:", err)
		os.Exit(1)
	}
	type kv struct {
		word  string
		count int
	}
	var sorted []kv
	for w, c := range counts {
		sorted = append(sorted, kv{w, c})
	}
	sort.Slice(sorted, func(i, j int) bool {
		if sorted[i].count != sorted[j].count {
			return sorted[i].count > sorted[j].count
		}
		return sorted[i].word < sorted[j].word
	})
	var b strings.Builder
	fmt.Fprintf(&b, "files %d\nlines %d\nwords %d\ndistinct %d\n", files, lines, words, len(counts))
	for i := 0; i < top && i < len(sorted); i++ {
		fmt.Fprintf(&b, "%6d %s\n", sorted[i].count, sorted[i].word)
	}
	if err := os.WriteFile("/out/counts.txt", []byte(b.String()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "wordcount:", err)
		os.Exit(1)
	}
	fmt.Printf("counted %d words in %d lines\n", words, lines)
}
