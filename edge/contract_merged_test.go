package edge

import (
	"github.com/barberpro/edge/actors"
	"github.com/barberpro/edge/storage"
)

// The real store and calendars satisfy the edge's interfaces. This file builds
// once storage (H1: the psychology records, storage.AuditFilter, which
// AuditFilter then aliases) and actors (H4: BookSeries, CancelSeries, Refresh)
// are merged: drop the build tag then.
var (
	_ Store     = (*storage.Store)(nil)
	_ Calendars = (*actors.Calendars)(nil)
)
