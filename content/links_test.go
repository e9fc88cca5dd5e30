package content

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"testing"
)

// treeFrom builds a tree from specs: "a/b/" is a folder, "a/b -> t" a
// symlink to t, any other a file. The folders above an entry are made as
// needed. It fails on a path that is not clean, that names an entry twice
// or that goes below a file or a symlink.
func treeFrom(specs []string) (*tree, map[string]int32, error) {
	t := newTree()
	t.add(entry{parent: -1, kind: kindDir})
	at := map[string]int32{"": 0}
	for _, spec := range specs {
		p, target, isLink := strings.Cut(spec, " -> ")
		kind := kindFile
		switch {
		case isLink:
			kind = kindSymlink
		case strings.HasSuffix(p, "/"):
			kind, p = kindDir, strings.TrimSuffix(p, "/")
		}
		if p == "" || path.Clean(p) != p || strings.HasPrefix(p, "/") || strings.HasPrefix(p, "../") || p == ".." {
			return nil, nil, fmt.Errorf("%q: not a clean relative path", spec)
		}
		if _, dup := at[p]; dup {
			return nil, nil, fmt.Errorf("%q: given twice", spec)
		}
		names := strings.Split(p, "/")
		dir := int32(0)
		for i, name := range names {
			if !validName(name) {
				return nil, nil, fmt.Errorf("%q: bad name %q", spec, name)
			}
			sub := strings.Join(names[:i+1], "/")
			if j, ok := at[sub]; ok {
				if i < len(names)-1 && t.entries[j].kind != kindDir {
					return nil, nil, fmt.Errorf("%q: below a file or symlink", spec)
				}
				dir = j
				continue
			}
			e := entry{parent: dir, depth: t.entries[dir].depth + 1, kind: kindDir, name: name}
			if i == len(names)-1 {
				e.kind, e.target = kind, target
			}
			dir, _ = t.add(e)
			at[sub] = dir
		}
	}
	return t, at, nil
}

func TestResolveLink(t *testing.T) {
	tests := []struct {
		name  string
		specs []string
		link  string
		want  error  // nil: inside
		to    string // where it leads when inside, "" for the root
		dang  bool   // and whether it names nothing once written
		blame string // the symlink at fault when refused, if not link
	}{
		{name: "sibling file", specs: []string{"a", "l -> a"}, link: "l", to: "a"},
		{name: "dot", specs: []string{"l -> ."}, link: "l", to: ""},
		{name: "up to the root", specs: []string{"sub/c -> .."}, link: "sub/c", to: ""},
		{name: "down and up", specs: []string{"d/", "l -> d/../d"}, link: "l", to: "d"},
		{name: "through a symlink", specs: []string{"sub/c -> ..", "sub/t -> c/sub/x", "sub/x"}, link: "sub/t", to: "sub/x"},
		{name: "chain", specs: []string{"x", "a -> b", "b -> c", "c -> x"}, link: "a", to: "x"},
		{name: "missing component", specs: []string{"l -> nothing/here"}, link: "l", to: "", dang: true},
		{name: "missing then up", specs: []string{"d/", "d/l -> m/../../x"}, link: "d/l", to: "", dang: true},
		{name: "below a file", specs: []string{"f", "l -> f/x"}, link: "l", to: "f", dang: true},
		{name: "slash after a file", specs: []string{"f", "l -> f/"}, link: "l", to: "f", dang: true},
		{name: "up from a file", specs: []string{"d/f", "l -> d/f/.."}, link: "l", to: "d", dang: true},

		{name: "absolute", specs: []string{"l -> /etc/passwd"}, link: "l", want: errLinkAbsolute},
		{name: "empty", specs: []string{"l -> "}, link: "l", want: errLinkEmpty},
		{name: "NUL", specs: []string{"l -> a\x00b"}, link: "l", want: errLinkNUL},
		{name: "too long", specs: []string{"l -> " + strings.Repeat("a/", maxLinkTarget/2+1)}, link: "l", want: errLinkLong},
		{name: "up from the root", specs: []string{"l -> .."}, link: "l", want: errLinkEscapes},
		{name: "up and back in", specs: []string{"x", "l -> ../x"}, link: "l", want: errLinkEscapes},
		{name: "a/../../x", specs: []string{"a/", "l -> a/../../x"}, link: "l", want: errLinkEscapes},
		{name: "through a symlink up", specs: []string{"sub/c -> ..", "sub/s -> c/../x"}, link: "sub/s", want: errLinkEscapes},
		{name: "missing then too far up", specs: []string{"l -> m/../../x"}, link: "l", want: errLinkEscapes},
		{name: "file then too far up", specs: []string{"f", "l -> f/../../x"}, link: "l", want: errLinkEscapes},
		{name: "through an escaping symlink", specs: []string{"a -> b/x", "b -> .."}, link: "a", want: errLinkEscapes, blame: "b"},
		{name: "self", specs: []string{"l -> l"}, link: "l", want: errLinkLoops},
		{name: "self below", specs: []string{"l -> l/x"}, link: "l", want: errLinkLoops},
		{name: "loop of two", specs: []string{"a -> b", "b -> a"}, link: "a", want: errLinkLoops, blame: "a"},
		{name: "loop through a folder", specs: []string{"d/a -> ../e/b", "e/b -> ../d/a"}, link: "d/a", want: errLinkLoops, blame: "d/a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, at, err := treeFrom(tt.specs)
			if err != nil {
				t.Fatal(err)
			}
			got := newLinkResolver(tr).resolve(at[tt.link])
			if !errors.Is(got.reason, tt.want) {
				t.Fatalf("resolve(%s) = %v, want %v", tt.link, got.reason, tt.want)
			}
			if tt.want != nil {
				blame := tt.blame
				if blame == "" {
					blame = tt.link
				}
				if got.culprit != at[blame] {
					t.Errorf("culprit = %q, want %q", tr.path(got.culprit), blame)
				}
				return
			}
			if got.to.at != at[tt.to] || got.to.dangling != tt.dang {
				t.Errorf("resolve(%s) leads to %q (dangling %t), want %q (dangling %t)", tt.link, tr.path(got.to.at), got.to.dangling, tt.to, tt.dang)
			}
		})
	}
}

// TestResolveLinkHops: a chain of maxLinkHops symlinks resolves, one more
// is refused; a long chain resolves without recursion.
func TestResolveLinkHops(t *testing.T) {
	chain := func(n int) []string {
		specs := []string{"x"}
		for i := range n - 1 {
			specs = append(specs, fmt.Sprintf("l%d -> l%d", i, i+1))
		}
		return append(specs, fmt.Sprintf("l%d -> x", n-1))
	}
	for _, tt := range []struct {
		links int
		want  error
	}{
		{1, nil},
		{maxLinkHops, nil},
		{maxLinkHops + 1, errLinkLoops},
		{10000, errLinkLoops},
	} {
		tr, at, err := treeFrom(chain(tt.links))
		if err != nil {
			t.Fatal(err)
		}
		r := newLinkResolver(tr)
		got := r.resolve(at["l0"])
		if !errors.Is(got.reason, tt.want) {
			t.Errorf("chain of %d: %v, want %v", tt.links, got.reason, tt.want)
		}
		if tt.want == nil && (got.hops != tt.links || got.to.at != at["x"]) {
			t.Errorf("chain of %d: %d hops to %q, want %d to x", tt.links, got.hops, tr.path(got.to.at), tt.links)
		}
		// Of a longer chain, the link maxLinkHops from its end resolves.
		if tt.links > maxLinkHops {
			if got := r.resolve(at[fmt.Sprintf("l%d", tt.links-maxLinkHops)]); got.reason != nil || got.hops != maxLinkHops {
				t.Errorf("chain of %d: the link %d from the end: %d hops, %v", tt.links, maxLinkHops, got.hops, got.reason)
			}
			if got := r.resolve(at[fmt.Sprintf("l%d", tt.links-maxLinkHops-1)]); !errors.Is(got.reason, errLinkLoops) {
				t.Errorf("chain of %d: the link %d from the end: %v, want %v", tt.links, maxLinkHops+1, got.reason, errLinkLoops)
			}
		}
	}
}

func TestBadLink(t *testing.T) {
	tr, at, err := treeFrom([]string{"ok -> d", "d/", "d/bad -> ../..", "d/worse -> /etc"})
	if err != nil {
		t.Fatal(err)
	}
	got, reason := tr.badLink()
	if got != at["d/bad"] || !errors.Is(reason, errLinkEscapes) {
		t.Fatalf("badLink = %q, %v; want d/bad, %v", tr.path(got), reason, errLinkEscapes)
	}
	tr, _, err = treeFrom([]string{"ok -> d", "d/", "d/up -> .."})
	if err != nil {
		t.Fatal(err)
	}
	if got, reason := tr.badLink(); reason != nil {
		t.Fatalf("badLink of a safe tree = %q, %v", tr.path(got), reason)
	}
}
