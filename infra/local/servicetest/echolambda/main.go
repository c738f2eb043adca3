// Command echolambda is the smallest real Lambda: the services test builds it as a bootstrap and
// invokes it under the runtime interface emulator to prove the emulator works here.
package main

import (
	"context"
	"strings"

	"github.com/aws/aws-lambda-go/lambda"
)

// Event is what the test sends.
type Event struct {
	Message string `json:"message"`
}

// Reply proves the handler ran: it echoes the message upper-cased.
type Reply struct {
	Echo string `json:"echo"`
}

func handle(_ context.Context, e Event) (Reply, error) {
	return Reply{Echo: strings.ToUpper(e.Message)}, nil
}

func main() { lambda.Start(handle) }
