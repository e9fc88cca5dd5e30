package market

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// InferBatch is a provider's signed answer to the calls of one forward
// pass: the root of a hash tree whose leaves are the calls' entries
// (InferLeaf), in the batch's order. One signature answers every call of
// the batch; each caller gets the envelope, its own outputs, its index
// and the sibling hashes on its path to the root (InferTree), and checks
// its entry alone (CheckInferProof).
type InferBatch struct {
	Service  string    `json:"service"`
	Root     []byte    `json:"root"`
	Count    int       `json:"count"`
	IssuedAt time.Time `json:"issued_at"`
}

// ErrBadAnswer: an answer to a call that is not for that call, or not of
// its shape.
var ErrBadAnswer = errors.New("bad answer")

// Domain tags of the tree's hashes, so that a leaf never passes as an
// inner node.
const (
	leafTag = 0
	nodeTag = 1
)

// InferLeaf is one call's entry in a signed batch: the hash of the
// request as sent, and the shape and little-endian bytes of its outputs.
func InferLeaf(request [32]byte, rows, cols int, outputs []byte) [32]byte {
	out := sha256.Sum256(outputs)
	var b [1 + 32 + 16 + 32]byte
	b[0] = leafTag
	copy(b[1:], request[:])
	binary.LittleEndian.PutUint64(b[33:], uint64(rows))
	binary.LittleEndian.PutUint64(b[41:], uint64(cols))
	copy(b[49:], out[:])
	return sha256.Sum256(b[:])
}

func inner(l, r []byte) [32]byte {
	var b [1 + 64]byte
	b[0] = nodeTag
	copy(b[1:], l)
	copy(b[33:], r)
	return sha256.Sum256(b[:])
}

// InferTree returns the root of the leaves' hash tree and, for each leaf,
// the sibling hashes from it up to the root. A level of odd width carries
// its last node up unchanged.
func InferTree(leaves [][32]byte) (root [32]byte, proofs [][][]byte) {
	if len(leaves) == 0 {
		return root, nil
	}
	proofs = make([][][]byte, len(leaves))
	level := make([][32]byte, len(leaves))
	copy(level, leaves)
	// pos[i] is where leaf i's ancestor sits in the current level.
	pos := make([]int, len(leaves))
	for i := range pos {
		pos[i] = i
	}
	for len(level) > 1 {
		for i, p := range pos {
			if s := p ^ 1; s < len(level) {
				proofs[i] = append(proofs[i], level[s][:])
			}
			pos[i] = p / 2
		}
		next := make([][32]byte, 0, (len(level)+1)/2)
		for i := 0; i < len(level); i += 2 {
			if i+1 < len(level) {
				next = append(next, inner(level[i][:], level[i+1][:]))
			} else {
				next = append(next, level[i])
			}
		}
		level = next
	}
	return level[0], proofs
}

// CheckInferProof checks that leaf is entry index of a batch of count
// entries whose tree has root, with proof as InferTree gave it.
func CheckInferProof(leaf [32]byte, index, count int, proof [][]byte, root []byte) error {
	if count < 1 || index < 0 || index >= count {
		return fmt.Errorf("%w: entry %d of a batch of %d", ErrBadAnswer, index, count)
	}
	h, used := leaf, 0
	for width := count; width > 1; width = (width + 1) / 2 {
		if s := index ^ 1; s < width {
			if used >= len(proof) || len(proof[used]) != 32 {
				return fmt.Errorf("%w: its proof is too short or malformed", ErrBadAnswer)
			}
			if index&1 == 0 {
				h = inner(h[:], proof[used])
			} else {
				h = inner(proof[used], h[:])
			}
			used++
		}
		index /= 2
	}
	if used != len(proof) || len(root) != 32 || [32]byte(root) != h {
		return fmt.Errorf("%w: it is not in the provider's signed batch", ErrBadAnswer)
	}
	return nil
}
