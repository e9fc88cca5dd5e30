//go:build tools

// Package tools pins the versions of the developer tools that make lint
// uses, apart from the product's own dependencies.
package tools

import _ "honnef.co/go/tools/cmd/staticcheck"
