package auth_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/barberpro/edge/edge/auth"
)

// FuzzAuthenticate feeds arbitrary Authorization headers through BearerToken and
// Verify: nothing panics, every failure is ErrNoToken or ErrBadToken, and anything
// accepted is a valid principal. The seed corpus (valid, expired and mangled
// tokens) runs as part of go test.
func FuzzAuthenticate(f *testing.F) {
	dir := f.TempDir()
	if err := auth.Init(dir); err != nil {
		f.Fatal(err)
	}
	v, err := auth.LoadKeySet(dir + "/" + auth.KeySetFile)
	if err != nil {
		f.Fatal(err)
	}
	s, err := auth.LoadSigner(dir)
	if err != nil {
		f.Fatal(err)
	}
	good, _ := s.Issue(auth.RoleClient, "cli-ana", time.Hour)
	s.Now = func() time.Time { return time.Now().Add(-48 * time.Hour) }
	expired, _ := s.Issue(auth.RoleOperator, "ops", time.Hour)
	for _, seed := range []string{
		"", "Bearer", "Bearer ", "Bearer " + good, "bearer " + good, "Basic " + good,
		"Bearer " + expired, "Bearer " + good + "x", "Bearer " + good[:len(good)/2],
		"Bearer a.b.c", "Bearer ..", "Bearer eyJhbGciOiJub25lIn0.e30.", "Bearer \x00",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		h := http.Header{}
		if header != "" {
			h.Set("Authorization", header)
		}
		p, err := v.Authenticate(h)
		if err != nil {
			if !errors.Is(err, auth.ErrNoToken) && !errors.Is(err, auth.ErrBadToken) {
				t.Fatalf("Authenticate(%q) = %v: neither ErrNoToken nor ErrBadToken", header, err)
			}
			return
		}
		if !p.Role.Valid() || p.Subject == "" {
			t.Fatalf("Authenticate(%q) accepted %+v", header, p)
		}
	})
}
