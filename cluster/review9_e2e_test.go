package cluster_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/barberpro/edge/cluster"
	"github.com/barberpro/edge/cluster/clustertest"
	"github.com/barberpro/edge/edge/auth"
	"github.com/barberpro/edge/edge/client"
)

// Test_Review9_AuditOneEntryPerPsychologyRequest drives psychology requests
// over HTTP on a real node (with a KEK) and counts, through GET /v1/audit as an
// operator, the entries each one appends for the booking: exactly one per
// request, allowed or refused (psychology.md, "Audit"). The idempotent replay
// of the booking (a read of it: it answers the whole booking) appends none.
func Test_Review9_AuditOneEntryPerPsychologyRequest(t *testing.T) {
	kekFile := newKEKFile(t)
	n := clustertest.MustStartNode(t, func(c *cluster.Config) { c.KEKFile = kekFile })
	ctx := context.Background()
	ops := clustertest.Operator(t, n)
	p := verifiedPsychologist(t, ops, 0, "MN 999", svc("Sesión", 50, 10))
	const cli = "cli-ana-r9e2e"
	ana := clustertest.Client(t, n, auth.RoleClient, cli)
	grantCare(t, ana, cli)
	anaTok := "Bearer " + clustertest.Token(t, n, auth.RoleClient, cli)
	provTok := "Bearer " + clustertest.Token(t, n, auth.RoleProvider, p.ID)
	body := fmt.Sprintf(`{"provider_id":%q,"service_id":%q,"client_id":%q,"start":%q}`, p.ID, p.Services[0].ID, cli, tomorrowAt(10, 0))
	a := send(t, n, "POST", "/v1/bookings", body, anaTok, "Idempotency-Key", "r9-key")
	if a.status != http.StatusCreated {
		t.Fatalf("book: %d %s", a.status, a.body)
	}
	var b struct{ ID string }
	mustJSON(t, a.body, &b)
	// entries counts the booking's entries other than the operator's own reads.
	entries := func() []client.AuditEntry {
		t.Helper()
		l, err := ops.Audit(ctx, client.AuditQuery{Object: b.ID, Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		var out []client.AuditEntry
		for _, e := range l.Items {
			if e.Action != "audit.read" {
				out = append(out, e)
			}
		}
		return out
	}
	if es := entries(); len(es) != 1 || es[0].Action != "booking.create" {
		t.Fatalf("after the booking: %+v", es)
	}
	for _, step := range []struct {
		name, method, path, body, authz string
		headers                         []string
		status                          int
		action                          string
	}{
		{"read booking", "GET", "/v1/bookings/" + b.ID, "", anaTok, nil, 200, "booking.read"},
		{"read session", "GET", "/v1/sessions/" + b.ID, "", anaTok, nil, 200, "session.read"},
		{"client reads notes", "GET", "/v1/sessions/" + b.ID + "/notes", "", anaTok, nil, 403, "notes.read"},
		{"operator reads notes", "GET", "/v1/sessions/" + b.ID + "/notes", "", "Bearer " + clustertest.Token(t, n, auth.RoleOperator, "ops"), nil, 403, "notes.read"},
		{"provider writes notes", "PUT", "/v1/sessions/" + b.ID + "/notes", `{"text":"r9 marker"}`, provTok, nil, 200, "notes.write"},
		{"provider reads notes", "GET", "/v1/sessions/" + b.ID + "/notes", "", provTok, nil, 200, "notes.read"},
		{"replayed booking", "POST", "/v1/bookings", body, anaTok, []string{"Idempotency-Key", "r9-key"}, 201, "booking.read"},
	} {
		before := len(entries())
		a := send(t, n, step.method, step.path, step.body, step.authz, step.headers...)
		if a.status != step.status {
			t.Errorf("%s: %d %s, want %d", step.name, a.status, a.body, step.status)
			continue
		}
		if cc := a.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s: Cache-Control %q", step.name, cc)
		}
		es := entries()
		if len(es)-before != 1 {
			t.Errorf("%s: %d audit entries appended, want exactly 1 (%s): %+v", step.name, len(es)-before, step.action, es[before:])
		}
	}
}

// Test_Review9_NoteOfExactly64KiBRefusedByTheFSM: the edge and the session
// actor accept notes up to 64 KiB of text (maxNoteBytes, session.MaxNoteBytes),
// but the FSM caps the sealed CIPHERTEXT at 64 KiB, and AES-GCM adds a 16-byte
// tag: a note of 65 521..65 536 bytes, valid by the API, is refused by the store
// (422 "store: invalid") after being sealed and proposed.
func Test_Review9_NoteOfExactly64KiBRefusedByTheFSM(t *testing.T) {
	kekFile := newKEKFile(t)
	n := clustertest.MustStartNode(t, func(c *cluster.Config) { c.KEKFile = kekFile })
	ctx := context.Background()
	ops := clustertest.Operator(t, n)
	p := verifiedPsychologist(t, ops, 0, "MN 998", svc("Sesión", 50, 10))
	const cli = "cli-r9-64k"
	ana := clustertest.Client(t, n, auth.RoleClient, cli)
	grantCare(t, ana, cli)
	b, err := ana.Book(ctx, client.BookingRequest{ProviderID: p.ID, ServiceID: p.Services[0].ID, ClientID: cli, Start: tomorrowAt(10, 0)}, "")
	if err != nil {
		t.Fatal(err)
	}
	provTok := "Bearer " + clustertest.Token(t, n, auth.RoleProvider, p.ID)
	for _, size := range []int{64<<10 - 16, 64 << 10} {
		a := send(t, n, "PUT", "/v1/sessions/"+b.ID+"/notes", `{"text":"`+strings.Repeat("a", size)+`"}`, provTok)
		if a.status != http.StatusOK {
			t.Errorf("a note of %d bytes (the API allows %d): %d %.200s", size, 64<<10, a.status, a.body)
		}
	}
}
