package cluster_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/barberpro/edge/edge/client"
	"github.com/barberpro/edge/simulations/load"
	"github.com/barberpro/edge/storage/seal"
)

// newKEKFile writes a fresh key-encryption key in a temp dir and returns its path.
func newKEKFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ar.kek")
	if _, err := seal.InitKEK(path); err != nil {
		t.Fatal(err)
	}
	return path
}

// verifiedPsychologist creates, through ops, a licensed psychologist of
// Buenos Aires (load provider i, services as given or the load default) and
// verifies it.
func verifiedPsychologist(t *testing.T, ops *client.Client, i int, licence string, services ...client.Service) *client.Provider {
	t.Helper()
	ctx := context.Background()
	pp := load.LoadProvider("buenos-aires", i)
	pp.Vertical, pp.License = "psychology", &client.License{Number: licence, Issuer: "Colegio"}
	if len(services) > 0 {
		pp.Services = services
	}
	p, err := ops.CreateProvider(ctx, pp, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ops.VerifyProvider(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	return p
}

// grantCare has clientID grant its psychology-care consent in ar through c
// (the client's own API client) and returns the consent.
func grantCare(t *testing.T, c *client.Client, clientID string) *client.Consent {
	t.Helper()
	cns, err := c.GrantConsent(context.Background(), clientID,
		client.ConsentRequest{Purpose: "psychology-care", Jurisdiction: "ar", TextVersion: "2026-01"}, "")
	if err != nil {
		t.Fatal(err)
	}
	return cns
}
