// Command server runs ReserveKit: `go run ./server` serves the GraphQL API;
// subcommands manage the database, accounts and keys. Run with --help.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}
