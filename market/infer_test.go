package market

import (
	"crypto/sha256"
	"errors"
	"testing"
)

// TestInferTree: every entry of batches of every small size checks
// against its root, and no entry passes at another index, with another
// entry's proof, or with a proof cut short.
func TestInferTree(t *testing.T) {
	for n := 1; n <= 9; n++ {
		leaves := make([][32]byte, n)
		for i := range leaves {
			leaves[i] = InferLeaf(sha256.Sum256([]byte{byte(i)}), 1, 2, []byte{byte(i), 1, 2, 3})
		}
		root, proofs := InferTree(leaves)
		for i := range leaves {
			if err := CheckInferProof(leaves[i], i, n, proofs[i], root[:]); err != nil {
				t.Errorf("batch of %d, entry %d: %v", n, i, err)
			}
			if n == 1 {
				continue
			}
			j := (i + 1) % n
			if err := CheckInferProof(leaves[i], j, n, proofs[i], root[:]); !errors.Is(err, ErrBadAnswer) {
				t.Errorf("batch of %d: entry %d passed as %d", n, i, j)
			}
			if err := CheckInferProof(leaves[j], i, n, proofs[i], root[:]); !errors.Is(err, ErrBadAnswer) {
				t.Errorf("batch of %d: entry %d passed with entry %d's proof", n, j, i)
			}
			if err := CheckInferProof(leaves[i], i, n, proofs[i][1:], root[:]); !errors.Is(err, ErrBadAnswer) {
				t.Errorf("batch of %d: entry %d passed with a hash of its proof left out", n, i)
			}
		}
	}
	leaf := InferLeaf([32]byte{}, 1, 2, nil)
	if InferLeaf([32]byte{}, 2, 1, nil) == leaf {
		t.Error("the leaf does not hold the outputs' shape")
	}
}
