// Command cyxwiz is the CyxWiz daemon and its command-line client.
package main

import (
	"os"

	"github.com/cyxwiz/cyxwiz/cmd/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
