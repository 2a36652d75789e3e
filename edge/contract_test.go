package edge

import (
	"github.com/barberpro/edge/edge/edgetest"
)

// The test doubles satisfy the edge's interfaces (the real ones: see
// contract_real_test.go).
var (
	_ Store     = (*edgetest.Store)(nil)
	_ Calendars = (*edgetest.Calendars)(nil)
	_ Sessions  = (*edgetest.Sessions)(nil)
)
