// Package auditq holds the audit filter that edge.Store.AuditEntries takes until
// storage's (storage.AuditFilter, the same fields) is merged: edge and its test
// doubles (edge/edgetest) both name it, and edgetest may not import edge. Once
// storage has it, edge.AuditFilter aliases storage.AuditFilter, edgetest uses
// that, and this package goes.
package auditq

// Filter selects audit entries: Object and Subject, when set, must match
// exactly; entries with seq > After; at most Limit (<= 0: the store's default).
type Filter struct {
	Object, Subject string
	After           uint64
	Limit           int
}
