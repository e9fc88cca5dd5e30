package cli

import (
	"flag"
	"fmt"
	"reflect"
	"strings"

	"github.com/cyxwiz/cyxwiz/node"
	"github.com/spf13/pflag"
)

// bindConfigFlags adds to fs a flag for every config key, as node.BindOverrides
// makes them, with its type and its default (node.DefaultConfig) for help.
func bindConfigFlags(fs *pflag.FlagSet) *node.Overrides {
	goFlags := flag.NewFlagSet("daemon", flag.ContinueOnError)
	overrides := node.BindOverrides(goFlags)
	defaults := map[string]reflect.Value{}
	cfg := node.DefaultConfig()
	configFields(reflect.ValueOf(&cfg).Elem(), "", defaults)
	goFlags.VisitAll(func(f *flag.Flag) {
		v := &configFlag{inner: f.Value, def: defaults[f.Name]}
		fs.Var(v, f.Name, "config key "+f.Name)
		if v.Type() == "bool" {
			fs.Lookup(f.Name).NoOptDefVal = "true"
		}
	})
	return overrides
}

// configFields maps each config key under v (named after its JSON path) to
// its field.
func configFields(v reflect.Value, prefix string, out map[string]reflect.Value) {
	t := v.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		if f := v.Field(i); f.Kind() == reflect.Struct {
			configFields(f, prefix+name+".", out)
		} else {
			out[prefix+name] = f
		}
	}
}

// configFlag is a config key's flag: it hands values to the override
// flag of node.BindOverrides and describes the key's type and default.
type configFlag struct {
	inner flag.Value
	def   reflect.Value
}

func (f *configFlag) Set(s string) error { return f.inner.Set(s) }

func (f *configFlag) IsBoolFlag() bool { return f.Type() == "bool" }

func (f *configFlag) Type() string {
	if !f.def.IsValid() {
		return "string"
	}
	switch f.def.Kind() {
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "int"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "uint"
	case reflect.Float32, reflect.Float64:
		return "float"
	case reflect.Slice:
		return "strings"
	}
	return "string"
}

// String is the default value, as help shows it.
func (f *configFlag) String() string {
	if !f.def.IsValid() {
		return ""
	}
	if f.def.Kind() == reflect.Slice {
		if f.def.Len() == 0 {
			return ""
		}
		parts := make([]string, f.def.Len())
		for i := range parts {
			parts[i] = fmt.Sprint(f.def.Index(i).Interface())
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	return fmt.Sprint(f.def.Interface())
}
