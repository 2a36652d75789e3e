package edge

import (
	"github.com/barberpro/edge/edge/edgetest"
	"github.com/barberpro/edge/storage"
)

// The real store and the test doubles satisfy the edge's interfaces.
var (
	_ Store     = (*storage.Store)(nil)
	_ Store     = (*edgetest.Store)(nil)
	_ Calendars = (*edgetest.Calendars)(nil)
)
