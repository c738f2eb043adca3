package spotinterrupt

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/liveagg/liveagg/workers/spot"
)

// DefaultAdminPort is the port the workers' admin API listens on unless the deployment says
// otherwise (modules/spot-workers' admin_port).
const DefaultAdminPort = 7070

// endpoint is where the instance's worker is reached: the private IPv4 address EC2 reports for
// the instance and the configured port. The liveagg:admin-endpoint tag is only compared with
// it, for a log line: anyone allowed ec2:CreateTags could have written the tag, and the token
// sent to it drains every worker of the fleet.
func (h *Handler) endpoint(n Notice, inst *ec2types.Instance, tags map[string]string) (string, error) {
	ip := net.ParseIP(aws.ToString(inst.PrivateIpAddress))
	if ip == nil || ip.To4() == nil {
		return "", fmt.Errorf("EC2 reports no private IPv4 address for %s (got %q)", n.InstanceID, aws.ToString(inst.PrivateIpAddress))
	}
	hostPort := net.JoinHostPort(ip.String(), strconv.Itoa(h.port))
	if tagged := tags[spot.AdminEndpointTag]; tagged != "" {
		if u, err := url.Parse(tagged); err != nil || u.Host != hostPort {
			h.log.Warn("the instance's "+spot.AdminEndpointTag+" tag disagrees with EC2; using EC2's address, not the tag",
				"event", n.EventID, "instance", n.InstanceID, "tag", tagged, "address", hostPort)
		}
	}
	return h.scheme() + "://" + hostPort, nil
}

func (h *Handler) scheme() string {
	if h.tls != nil {
		return "https"
	}
	return "http"
}

// adminHTTPClient is the client every admin call goes through. It never follows a redirect
// (the token would go wherever the redirect points), never uses a proxy from the environment
// (same reason), and verifies the worker's certificate against the configured CA when TLS is
// on. With a dial override (a test hook) it connects only to the override's loopback targets.
func (h *Handler) adminHTTPClient() *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	dial := d.DialContext
	if h.dialOverride != nil {
		over := h.dialOverride
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			to, ok := over[addr]
			if !ok {
				return nil, fmt.Errorf("dial %s: the admin dial override is set and has no entry for it; not dialling an address outside it", addr)
			}
			return d.DialContext(ctx, network, to)
		}
	}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         dial,
			TLSClientConfig:     h.tls,
			TLSHandshakeTimeout: 5 * time.Second,
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     30 * time.Second,
		},
		CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			return fmt.Errorf("worker answered with a redirect to %s: not followed, the admin token goes only to the address EC2 reports", req.URL.Redacted())
		},
	}
}

// Config is what the function serves. Every field is required; an empty Stack or Groups
// matches no instance.
type Config struct {
	// Stack is the liveagg:stack tag value of this function's instances.
	Stack string
	// Groups are the Auto Scaling groups whose instances this function drains.
	Groups []string
	// TokenParameter names the SSM SecureString holding the workers' admin token.
	TokenParameter string
}

// Environment variables read by FromEnv.
const (
	EnvTokenParameter = "LIVEAGG_ADMIN_TOKEN_PARAMETER"
	EnvStack          = "LIVEAGG_STACK"
	EnvGroups         = "LIVEAGG_ASG"
	EnvNotice         = "LIVEAGG_NOTICE"
	EnvAdminPort      = "LIVEAGG_ADMIN_PORT"
	EnvAdminCA        = "LIVEAGG_ADMIN_CA"
	EnvAdminTLSName   = "LIVEAGG_ADMIN_SERVER_NAME"
	// EnvAdminDialOverride is a test hook, never set in a deployment; see WithAdminDialOverride.
	EnvAdminDialOverride = "LIVEAGG_ADMIN_HOST_OVERRIDE"
)

// FromEnv reads the function's configuration from its environment and checks it, with
// messages that name the variable:
//
//	LIVEAGG_ADMIN_TOKEN_PARAMETER  SSM SecureString holding the workers' admin token (required)
//	LIVEAGG_STACK                  the liveagg:stack tag value of this stack's instances (required)
//	LIVEAGG_ASG                    the Auto Scaling group(s) this function drains, comma-separated (required)
//	LIVEAGG_ADMIN_PORT             the workers' admin API port (default 7070)
//	LIVEAGG_ADMIN_CA               path of a PEM CA bundle: use HTTPS and verify the worker's
//	                               certificate against it (default: plain HTTP, for admin
//	                               traffic that stays inside the workers' security group)
//	LIVEAGG_ADMIN_SERVER_NAME      the name the worker's certificate must carry (default: the
//	                               instance's private IP address); needs LIVEAGG_ADMIN_CA
//	LIVEAGG_NOTICE                 time from an event to the instance's end (default 2m)
//	LIVEAGG_ADMIN_HOST_OVERRIDE    test hook only: ip:port=127.0.0.1:port,... (WithAdminDialOverride)
func FromEnv(getenv func(string) string) (Config, []Option, error) {
	cfg := Config{TokenParameter: getenv(EnvTokenParameter), Stack: strings.TrimSpace(getenv(EnvStack))}
	if cfg.TokenParameter == "" {
		return cfg, nil, fmt.Errorf("%s is not set: name the SSM SecureString parameter that holds the workers' admin token", EnvTokenParameter)
	}
	if cfg.Stack == "" {
		return cfg, nil, fmt.Errorf("%s is not set: name the stack (the liveagg:stack tag value) whose instances this function drains", EnvStack)
	}
	for g := range strings.SplitSeq(getenv(EnvGroups), ",") {
		if g = strings.TrimSpace(g); g != "" {
			cfg.Groups = append(cfg.Groups, g)
		}
	}
	if len(cfg.Groups) == 0 {
		return cfg, nil, fmt.Errorf("%s is not set: name the Auto Scaling group(s) whose instances this function drains, comma-separated", EnvGroups)
	}
	var opts []Option
	if v := getenv(EnvNotice); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return cfg, nil, fmt.Errorf("%s %q is not a positive duration such as 2m", EnvNotice, v)
		}
		opts = append(opts, WithNotice(d))
	}
	if v := getenv(EnvAdminPort); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < 1 || p > 65535 {
			return cfg, nil, fmt.Errorf("%s %q is not a port (1-65535)", EnvAdminPort, v)
		}
		opts = append(opts, WithAdminPort(p))
	}
	name := getenv(EnvAdminTLSName)
	if path := getenv(EnvAdminCA); path != "" {
		pem, err := os.ReadFile(path)
		if err != nil {
			return cfg, nil, fmt.Errorf("%s: %w", EnvAdminCA, err)
		}
		tc, err := AdminTLS(pem, name)
		if err != nil {
			return cfg, nil, fmt.Errorf("%s %s: %w", EnvAdminCA, path, err)
		}
		opts = append(opts, WithAdminTLS(tc))
	} else if name != "" {
		return cfg, nil, fmt.Errorf("%s is set but %s is not: a server name is only checked over TLS", EnvAdminTLSName, EnvAdminCA)
	}
	if v := getenv(EnvAdminDialOverride); v != "" {
		over, err := ParseDialOverride(v)
		if err != nil {
			return cfg, nil, fmt.Errorf("%s: %w", EnvAdminDialOverride, err)
		}
		opts = append(opts, WithAdminDialOverride(over))
	}
	return cfg, opts, nil
}

// AdminTLS returns the TLS configuration for the admin client: the worker's certificate must
// chain to a CA in caPEM and carry serverName, or the instance's private IP address when
// serverName is empty (Go checks an IP host against the certificate's IP SANs).
func AdminTLS(caPEM []byte, serverName string) (*tls.Config, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("no PEM certificate in the CA bundle")
	}
	return &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}, nil
}

// ParseDialOverride reads the test hook's mapping: comma-separated ip:port=127.0.0.1:port
// pairs. Every target must be a loopback address, so the hook can move a connection within
// the machine the function runs on and nowhere else.
func ParseDialOverride(s string) (map[string]string, error) {
	out := map[string]string{}
	for pair := range strings.SplitSeq(s, ",") {
		from, to, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok {
			return nil, fmt.Errorf("%q is not ip:port=127.0.0.1:port", pair)
		}
		if _, _, err := net.SplitHostPort(from); err != nil {
			return nil, fmt.Errorf("%q: %w", from, err)
		}
		host, _, err := net.SplitHostPort(to)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", to, err)
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("%q: the target must be a loopback address", to)
		}
		out[from] = to
	}
	return out, nil
}
