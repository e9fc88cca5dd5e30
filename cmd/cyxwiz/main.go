// Command cyxwiz is the CyxWiz daemon and its command-line client.
package main

import (
	"os"

	"github.com/cyxwiz/cyxwiz/cmd/cli"
	"github.com/cyxwiz/cyxwiz/compute/train"
)

func main() {
	train.ServeWorkerIfAsked() // the daemon trains each job in a copy of itself
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
