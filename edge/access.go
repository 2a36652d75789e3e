package edge

import (
	"context"
	"errors"
	"net/http"

	"github.com/barberpro/edge/edge/auth"
)

// Access control (security.md, "People: bearer tokens"). Every route of the route
// table (server.go) names its access: public, or what each role may do. The
// wrapper of every route authenticates the bearer token, charges the rate limit,
// and applies what the request alone can decide (the role, and a subject that
// must equal a path parameter); what needs the record (a booking's client or
// provider, a new booking's client_id and provider_id) is decided by the handler
// once it has read or decoded it, with Server.owns. Adding a route is one line in
// the table with one of the access values below (or a new combination).

// grant is what one role may do on a route.
type grant uint8

const (
	// deny: the role may not call the route (403).
	deny grant = iota
	// anyone: every subject of the role may.
	anyone
	// ownPath: only the subject named by the route's path parameter (access.param).
	ownPath
	// ownRecord: only the subject the record names: a client its client_id, a
	// provider its provider_id. The handler decides with Server.owns once it has
	// the record; a refused read answers 404, as a missing record does.
	ownRecord
	// refused: the role may not, but the route lets the request reach the
	// handler (relayed to the record's home first), which answers 403 once it
	// has appended the refusal's audit record there (verticals audited "all":
	// refusals of a session's notes and moves must leave a trace).
	refused
)

// access is who may call a route.
type access struct {
	// public routes need no token; a valid one only picks the rate limit.
	public bool
	// client, provider and operator are what each role may do.
	client, provider, operator grant
	// param is the path parameter an ownPath grant compares with the subject.
	param string
}

// The access rules of security.md's table, named for the route table.
var (
	// publicAccess: /healthz, /readyz, /metrics, /openapi.json, provider list,
	// profile and availability.
	publicAccess = access{public: true}
	// operatorOnly: POST /v1/providers (and …/verify), placement, /v1/cluster/*,
	// audit, backup.
	operatorOnly = access{operator: anyone}
	// ownProviderPath: PATCH /v1/providers/{id}: the provider itself, operators.
	ownProviderPath = access{provider: ownPath, operator: anyone, param: "id"}
	// ownBooking: POST /v1/bookings (client_id / provider_id of the body), GET,
	// cancel and reschedule of a booking (its client_id / provider_id).
	ownBooking = access{client: ownRecord, provider: ownRecord, operator: anyone}
	// ownClientBookings: GET /v1/clients/{client_id}/bookings: the client itself,
	// operators.
	ownClientBookings = access{client: ownPath, operator: anyone, param: "client_id"}
	// ownClientOnly: consents (grant, list, withdraw) and export: the client
	// itself; no operator (security.md: "bookings only").
	ownClientOnly = access{client: ownPath, param: "client_id"}
	// ownClientOrOperator: DELETE /v1/clients/{client_id}/health-data.
	ownClientOrOperator = access{client: ownPath, operator: anyone, param: "client_id"}
	// sessionRead: GET /v1/sessions/{id}: its client, its (treating) provider,
	// operators (no notes).
	sessionRead = access{client: ownRecord, provider: ownRecord, operator: anyone}
	// treatingProvider: session moves and notes: the booking's provider only;
	// clients and operators are refused by the handler, with an audit record.
	treatingProvider = access{client: refused, provider: ownRecord, operator: refused}
)

// grantOf is what role may do under a.
func (a access) grantOf(role auth.Role) grant {
	switch role {
	case auth.RoleClient:
		return a.client
	case auth.RoleProvider:
		return a.provider
	case auth.RoleOperator:
		return a.operator
	}
	return deny
}

// caller is who a request speaks for, as the route wrapper established it.
type caller struct {
	p auth.Principal
	// g is what the caller's role may do on the route.
	g grant
	// authorization is the request's Authorization header, passed on verbatim to
	// the nodes a list is gathered from.
	authorization string
	// node is the node the request entered by: this node, or the relaying node
	// of a relayed request (its peer certificate named it). Audit records
	// carry it.
	node string
}

type callerKey struct{}

// callerOf returns the caller of a request on a route that needs a token; ok is
// false on public routes called without one.
func callerOf(ctx context.Context) (caller, bool) {
	c, ok := ctx.Value(callerKey{}).(caller)
	return c, ok
}

// Authorization returns the Authorization header of the request whose context
// ctx is, once the route admitted it ("" on a public route called without a
// valid token). A Config func that relays the request to another node (Remove
// of another jurisdiction's member) passes it on, for that node to verify again.
func Authorization(ctx context.Context) string {
	c, _ := callerOf(ctx)
	return c.authorization
}

// owns reports whether the caller may act on a record of client clientID and
// provider providerID: operators (and any grant of anyone) always, a client when
// it is clientID, a provider when it is providerID. No caller: false.
func owns(ctx context.Context, clientID, providerID string) bool {
	c, ok := callerOf(ctx)
	if !ok {
		return false
	}
	switch c.g {
	case anyone:
		return true
	case ownRecord:
		switch c.p.Role {
		case auth.RoleClient:
			return c.p.Subject == clientID
		case auth.RoleProvider:
			return c.p.Subject == providerID
		}
	}
	return false
}

// errUnauthorized is the 401 of a request without an acceptable token.
func errUnauthorized(err error) *apiError {
	detail := "this route needs a bearer token (Authorization: Bearer TOKEN)"
	challenge := `Bearer realm="barberpro"`
	if !errors.Is(err, auth.ErrNoToken) {
		// RFC 6750 section 3.1: a token was sent and is not acceptable.
		challenge = `Bearer realm="barberpro", error="invalid_token"`
	}
	switch {
	case errors.Is(err, auth.ErrExpired):
		detail = "the bearer token has expired"
	case errors.Is(err, auth.ErrUnknownKey):
		detail = "the bearer token is signed by a key this node does not know"
	case errors.Is(err, auth.ErrWrongIssuer):
		detail = "the bearer token is not of the issuer this node accepts"
	case errors.Is(err, auth.ErrLifetime):
		detail = "the bearer token lives longer than this node accepts (exp - iat)"
	case errors.Is(err, auth.ErrBadToken):
		detail = "the bearer token is malformed or not validly signed"
	}
	return &apiError{status: http.StatusUnauthorized, code: CodeUnauthorized, detail: detail,
		header: http.Header{"Www-Authenticate": {challenge}}}
}

// errForbidden is the 403 of a valid token without the right.
func errForbidden(detail string) *apiError {
	return &apiError{status: http.StatusForbidden, code: CodeForbidden, detail: detail}
}

// authorize decides what the request alone can: a token is needed unless the
// route is public, the role must have a grant, and an ownPath grant needs the
// subject in the path. It returns the request's caller (ok false on a public
// route without a valid token) or the problem to answer (with the caller, ok
// false, when a valid token was refused).
func authorize(r *http.Request, a access, p auth.Principal, authErr error, node string) (caller, bool, error) {
	if authErr != nil {
		if a.public {
			return caller{}, false, nil
		}
		return caller{}, false, errUnauthorized(authErr)
	}
	c := caller{p: p, g: a.grantOf(p.Role), authorization: r.Header.Get("Authorization"), node: node}
	if a.public {
		c.g = anyone
		return c, true, nil
	}
	// A refusal returns the caller too (ok false): the wrapper audits the
	// refusals of a client's psychology routes in its name.
	switch c.g {
	case deny:
		return c, false, errForbidden("a " + string(p.Role) + " token may not call this route")
	case ownPath:
		if r.PathValue(a.param) != p.Subject {
			return c, false, errForbidden("a " + string(p.Role) + " may call this route only for itself")
		}
	}
	return c, true, nil
}
