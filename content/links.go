package content

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ipfs/go-cid"
)

// entryKind is what a tree entry becomes on disk.
type entryKind uint8

const (
	kindDir entryKind = iota
	kindFile
	kindSymlink
)

// entry is one folder, file or symlink of a tree that Get writes.
type entry struct {
	parent int32 // the folder holding it; -1 for the root
	depth  int32 // folders above it; 0 for the root
	kind   entryKind
	name   string
	target string  // a symlink's target
	cid    cid.Cid // a file's data
}

type childKey struct {
	dir  int32
	name string
}

// tree is what one Get writes, known in full before anything is written:
// its entries in depth-first order, each folder before what it holds, and
// an index from folder and name to entry.
type tree struct {
	entries []entry
	index   map[childKey]int32
	// fileBytes is the sum of the sizes the files declare.
	fileBytes int64
}

// addFile counts a file of n bytes, saturating well below overflow.
func (t *tree) addFile(n int64) { t.fileBytes = min(t.fileBytes+n, 1<<62) }

func newTree() *tree {
	return &tree{index: map[childKey]int32{}}
}

// add appends e and returns its index; false when its folder already
// holds an entry of that name.
func (t *tree) add(e entry) (int32, bool) {
	i := int32(len(t.entries))
	if e.parent >= 0 {
		k := childKey{e.parent, e.name}
		if _, dup := t.index[k]; dup {
			return 0, false
		}
		t.index[k] = i
	}
	t.entries = append(t.entries, e)
	return i, true
}

// path returns the slash-separated path of entry i below the root; "" for
// the root.
func (t *tree) path(i int32) string {
	var names []string
	for ; i > 0; i = t.entries[i].parent {
		names = append(names, t.entries[i].name)
	}
	var b strings.Builder
	for j := len(names) - 1; j >= 0; j-- {
		b.WriteString(names[j])
		if j > 0 {
			b.WriteByte('/')
		}
	}
	return b.String()
}

const (
	// maxLinkHops bounds the symlinks followed resolving one symlink, the
	// one itself included, as Linux bounds them (40).
	maxLinkHops = 40
	// maxLinkTarget is the longest symlink target written: Linux takes no
	// longer one.
	maxLinkTarget = 4095
)

// Reasons a symlink is refused.
var (
	errLinkEmpty    = errors.New("has an empty target")
	errLinkLong     = fmt.Errorf("has a target longer than %d bytes", maxLinkTarget)
	errLinkNUL      = errors.New("has a target with a NUL byte")
	errLinkAbsolute = errors.New("has an absolute target")
	errLinkEscapes  = errors.New("leads outside the folder")
	errLinkLoops    = fmt.Errorf("loops or follows more than %d symlinks", maxLinkHops)
)

// place is where a path leads in a tree: the entry at, then missing
// components below it that the tree does not have, taken lexically.
// dangling tells that some component names nothing once written: one the
// tree lacks, or one below a file.
type place struct {
	at       int32
	missing  int
	dangling bool
}

// linkResult is where a symlink leads, with the symlinks followed to get
// there (itself included), or why it is refused: culprit is the symlink
// at fault, itself or one it leads through.
type linkResult struct {
	to      place
	hops    int
	reason  error
	culprit int32
}

// linkFrame is a symlink being resolved: its target's components not yet
// taken, and where those taken so far lead.
type linkFrame struct {
	link    int32
	rest    string
	at      place
	hops    int
	checked bool // its target passed checkTarget
}

// linkResolver resolves the symlinks of a tree against the tree alone,
// never the disk. Each symlink is resolved once; symlinks met on the way
// are resolved on an explicit stack, so a long chain costs no recursion.
type linkResolver struct {
	t       *tree
	done    map[int32]linkResult
	pending map[int32]bool
}

func newLinkResolver(t *tree) *linkResolver {
	return &linkResolver{t: t, done: map[int32]linkResult{}, pending: map[int32]bool{}}
}

// resolve reports where the symlink t.entries[link] leads once written.
// Its target is taken component by component from the folder holding it,
// the way the kernel resolves it: a folder of the tree is entered, ".."
// leaves for the folder above, and a symlink of the tree is followed to
// where it leads, so that ".." after it leaves where it leads and not
// where it is. A component the tree lacks, or one below a file, names
// nothing once written (the result is dangling); it and what follows are
// taken lexically, which keeps a path inside only if its text does. The
// symlink is refused when its target is empty, too long, has a NUL byte or
// is absolute, when any step, even a transient one, goes above the root,
// and when it loops or follows more than maxLinkHops symlinks.
func (r *linkResolver) resolve(link int32) linkResult {
	if res, ok := r.done[link]; ok {
		return res
	}
	stack := []linkFrame{r.start(link)}
	for len(stack) > 0 {
		f := &stack[len(stack)-1]
		next, culprit, reason := r.advance(f)
		switch {
		case reason != nil:
			// Every frame below waits, directly or not, on the one at fault.
			for _, g := range stack {
				r.done[g.link] = linkResult{reason: reason, culprit: culprit}
				delete(r.pending, g.link)
			}
			stack = stack[:0]
		case next >= 0:
			stack = append(stack, r.start(next))
		default:
			res := linkResult{to: f.at, hops: f.hops}
			r.done[f.link] = res
			delete(r.pending, f.link)
			stack = stack[:len(stack)-1]
			if len(stack) > 0 {
				stack[len(stack)-1].take(res)
			}
		}
	}
	return r.done[link]
}

func (r *linkResolver) start(link int32) linkFrame {
	r.pending[link] = true
	e := r.t.entries[link]
	return linkFrame{link: link, rest: e.target, at: place{at: e.parent}, hops: 1}
}

// take applies the result of the symlink f waits on.
func (f *linkFrame) take(res linkResult) {
	dangling := f.at.dangling
	f.at = res.to
	f.at.dangling = f.at.dangling || dangling
	f.hops += res.hops
}

// advance takes f's components until f is resolved (next -1), needs a
// symlink resolved first (next, which is not pending), or is refused.
func (r *linkResolver) advance(f *linkFrame) (next, culprit int32, reason error) {
	t := r.t
	if !f.checked {
		f.checked = true
		if reason := checkTarget(f.rest); reason != nil {
			return -1, f.link, reason
		}
		if f.at.at < 0 { // the root itself: its folder is outside
			return -1, f.link, errLinkEscapes
		}
	}
	if f.hops > maxLinkHops {
		return -1, f.link, errLinkLoops
	}
	for f.rest != "" {
		part, rest, slash := strings.Cut(f.rest, "/")
		f.rest = rest
		if slash && rest == "" {
			f.rest = "." // a trailing slash asks for a folder, as "/." does
		}
		atFile := f.at.missing == 0 && t.entries[f.at.at].kind != kindDir
		switch {
		case part == "" || part == ".":
			f.at.dangling = f.at.dangling || atFile
		case part == "..":
			f.at.dangling = f.at.dangling || atFile
			switch {
			case f.at.missing > 0:
				f.at.missing--
			case f.at.at == 0:
				return -1, f.link, errLinkEscapes
			default:
				f.at.at = t.entries[f.at.at].parent
			}
		case f.at.missing > 0 || atFile:
			f.at.missing++
			f.at.dangling = true
		default:
			child, ok := t.index[childKey{f.at.at, part}]
			switch {
			case !ok:
				f.at.missing++
				f.at.dangling = true
			case t.entries[child].kind != kindSymlink:
				f.at.at = child
			default:
				if r.pending[child] {
					return -1, child, errLinkLoops
				}
				res, ok := r.done[child]
				if !ok {
					return child, 0, nil
				}
				if res.reason != nil {
					return -1, res.culprit, res.reason
				}
				f.take(res)
				if f.hops > maxLinkHops {
					return -1, f.link, errLinkLoops
				}
			}
		}
	}
	return -1, 0, nil
}

// checkTarget refuses a target that cannot be written or that is
// absolute.
func checkTarget(target string) error {
	switch {
	case target == "":
		return errLinkEmpty
	case len(target) > maxLinkTarget:
		return errLinkLong
	case strings.IndexByte(target, 0) >= 0:
		return errLinkNUL
	case strings.HasPrefix(target, "/"):
		return errLinkAbsolute
	}
	return nil
}

// badLink resolves every symlink of t and returns the first refused, in
// tree order, as the symlink at fault and the reason; -1 when none is.
func (t *tree) badLink() (int32, error) {
	r := newLinkResolver(t)
	for i, e := range t.entries {
		if e.kind != kindSymlink {
			continue
		}
		if res := r.resolve(int32(i)); res.reason != nil {
			return res.culprit, res.reason
		}
	}
	return -1, nil
}
