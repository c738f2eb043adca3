package admin

import "crypto/tls"

// ServerTLS is the admin API's server side of TLS: the worker's certificate, TLS 1.2 at least.
// The client (the spot-interruption lambda) verifies the certificate against its CA and the
// name it expects; the bearer token still authorises every request, since TLS only proves
// the server to the client and keeps the token off the wire in clear.
func ServerTLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}
