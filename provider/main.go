// Command terraform-provider-liveagg is the liveagg Terraform provider (protocol 6).
package main

import (
	"context"
	"flag"
	"log"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"

	"github.com/liveagg/liveagg/provider/internal/tfprovider"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	debug := flag.Bool("debug", false, "run with support for debuggers such as delve")
	flag.Parse()
	err := providerserver.Serve(context.Background(), tfprovider.New(version), providerserver.ServeOpts{
		Address: "registry.opentofu.org/liveagg/liveagg",
		Debug:   *debug,
	})
	if err != nil {
		log.Fatal(err)
	}
}
