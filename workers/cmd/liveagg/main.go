// Command liveagg is the one binary of liveagg: see `liveagg --help`.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/liveagg/liveagg/workers/cli"
)

func main() {
	err := cli.New(os.Stdout, os.Stderr).Execute()
	var exit *cli.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		os.Exit(exit.Code)
	default:
		fmt.Fprintln(os.Stderr, "liveagg:", err)
		os.Exit(cli.ExitUsage)
	}
}
