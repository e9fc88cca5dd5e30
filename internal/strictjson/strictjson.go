// Package strictjson decodes JSON written by hand (job specs, configs, API
// params) strictly: a key that repeats within its object, an unknown field
// (names are case-sensitive) or a value of the wrong type is an error that
// names the key by its full path, such as inputs[1].cid.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// maxDepth is the nesting limit of encoding/json; deeper input is refused.
const maxDepth = 10000

// KeyError is an object key that is refused: one that repeats an earlier key
// of the same object, or one that the struct decoded into has no field for.
type KeyError struct {
	// Path is the key's full path, such as inputs[0].cid.
	Path string
	// Duplicate is set when the key repeats an earlier key of its object;
	// otherwise the key names no field.
	Duplicate bool
	// Field is, for a key that differs from a field's name only in case
	// (encoding/json would match it), that field's name.
	Field string
}

// Error says what is wrong with the key, for example
// "inputs[0].cid: duplicate key".
func (e *KeyError) Error() string {
	switch {
	case e.Duplicate:
		return e.Path + ": duplicate key"
	case e.Field != "":
		return fmt.Sprintf("%s: unknown field (names are case-sensitive: %q)", e.Path, e.Field)
	}
	return e.Path + ": unknown field"
}

// Decode decodes data into v, which must be a pointer. A repeated key, a key
// that is not a field's exact name, a value of the wrong type and trailing
// data after the value are errors.
func Decode(data []byte, v any) error {
	if err := Check(data, v); err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return describe(err)
	}
	return nil
}

// Check reports what Decode would refuse in the keys of data, without
// decoding it: a repeated key or a key that v's type has no field for, as a
// *KeyError; malformed JSON or trailing data as another error. v must be a
// pointer. Values of the wrong type are left to the decoder.
func Check(data []byte, v any) error {
	return check(data, reflect.TypeOf(v).Elem())
}

// CheckDuplicates reports the first key of data that repeats an earlier key
// of the same object, at any depth, as a *KeyError; malformed JSON or
// trailing data as another error.
func CheckDuplicates(data []byte) error {
	return check(data, nil)
}

func check(data []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	w := walker{dec: dec}
	if err := w.value(t, 0); err != nil {
		return describe(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// walker reads JSON tokens and checks every object's keys; t, where not nil,
// is the Go type the value at hand decodes into.
type walker struct {
	dec *json.Decoder
	// steps is the path to the value at hand.
	steps []step
}

// step is an object key, or an array index when index is not -1.
type step struct {
	key   string
	index int
}

func (w *walker) value(t reflect.Type, depth int) error {
	tok, err := w.dec.Token()
	if err != nil {
		return err
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	if depth >= maxDepth {
		return fmt.Errorf("%s: nested more than %d levels deep", w.path(), maxDepth)
	}
	t = target(t)
	if delim == '{' {
		return w.object(t, depth)
	}
	return w.array(t, depth)
}

func (w *walker) object(t reflect.Type, depth int) error {
	var fields map[string]reflect.Type
	var elem reflect.Type
	if t != nil {
		switch t.Kind() {
		case reflect.Struct:
			fields = fieldsOf(t)
		case reflect.Map:
			elem = t.Elem()
		}
	}
	seen := map[string]bool{}
	for w.dec.More() {
		tok, err := w.dec.Token()
		if err != nil {
			return err
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("malformed JSON: object key %v is not a string", tok)
		}
		w.steps = append(w.steps, step{key: key, index: -1})
		if seen[key] {
			return &KeyError{Path: w.path(), Duplicate: true}
		}
		seen[key] = true
		vt := elem
		if fields != nil {
			ft, ok := fields[key]
			if !ok {
				return &KeyError{Path: w.path(), Field: foldedField(fields, key)}
			}
			vt = ft
		}
		if err := w.value(vt, depth+1); err != nil {
			return err
		}
		w.steps = w.steps[:len(w.steps)-1]
	}
	_, err := w.dec.Token()
	return err
}

func (w *walker) array(t reflect.Type, depth int) error {
	var elem reflect.Type
	if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
		elem = t.Elem()
	}
	for i := 0; w.dec.More(); i++ {
		w.steps = append(w.steps, step{index: i})
		if err := w.value(elem, depth+1); err != nil {
			return err
		}
		w.steps = w.steps[:len(w.steps)-1]
	}
	_, err := w.dec.Token()
	return err
}

func (w *walker) path() string {
	var b strings.Builder
	for _, s := range w.steps {
		if s.index >= 0 {
			b.WriteString("[" + strconv.Itoa(s.index) + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		if s.key == "" {
			b.WriteString(`""`)
			continue
		}
		b.WriteString(s.key)
	}
	if b.Len() == 0 {
		return "(top level)"
	}
	return b.String()
}

var (
	unmarshalerType     = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[interface{ UnmarshalText([]byte) error }]()
)

// target returns the type whose fields or elements a JSON value is checked
// against: t without pointers, or nil where encoding/json leaves the value
// to an interface or to the type's own decoder, whose keys only the
// duplicate check covers.
func target(t reflect.Type) reflect.Type {
	for t != nil {
		if p := reflect.PointerTo(t); p.Implements(unmarshalerType) || p.Implements(textUnmarshalerType) {
			return nil
		}
		if t.Kind() != reflect.Pointer {
			break
		}
		t = t.Elem()
	}
	if t != nil && t.Kind() == reflect.Interface {
		return nil
	}
	return t
}

// foldedField returns the field whose name encoding/json would match to key
// regardless of case, or "".
func foldedField(fields map[string]reflect.Type, key string) string {
	var matches []string
	for name := range fields {
		if strings.EqualFold(name, key) {
			matches = append(matches, name)
		}
	}
	if len(matches) == 0 {
		return ""
	}
	sort.Strings(matches)
	return matches[0]
}

func describe(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			field = "(top level)"
		}
		return fmt.Errorf("%s: got JSON %s, want %s", field, te.Value, kindName(te.Type))
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("malformed JSON at byte %d: %w", se.Offset, se)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return errors.New("malformed JSON: the input ends early")
	}
	return err
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return t.String()
}

func fieldsOf(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}
