package edge

import (
	"github.com/barberpro/edge/actors"
	"github.com/barberpro/edge/storage"
)

// The real store and calendars satisfy the edge's interfaces.
var (
	_ Store     = (*storage.Store)(nil)
	_ Calendars = (*actors.Calendars)(nil)
)
