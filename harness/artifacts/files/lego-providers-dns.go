// k8s-ha-lab: this file replaces the package's generated registry of ACME DNS-01 providers
// (zz_gen_dns_providers.go, about 180 cloud DNS APIs and their SDKs) when traefik is built for
// the lab. The lab has no public DNS and no ACME server, so no certificate resolver of its
// traefik uses a DNS challenge; leaving the SDKs out saves minutes of a cold compile.
// Everything else in traefik and lego is the published source. See docs/artifacts.md.

package dns

import (
	"fmt"

	"github.com/go-acme/lego/v4/challenge"
)

// NewDNSChallengeProviderByName refuses every provider name: none is built in.
func NewDNSChallengeProviderByName(name string) (challenge.Provider, error) {
	return nil, fmt.Errorf("unrecognized DNS provider: %s (this traefik was built by k8s-ha-lab without ACME DNS-01 providers)", name)
}
