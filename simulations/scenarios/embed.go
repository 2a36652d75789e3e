// Package scenarios is the library of failover simulation scenarios that
// `barberpro sim` runs: one YAML file per scenario (see package scenario for
// the format), embedded in the binary.
package scenarios

import "embed"

// FS holds every scenario file of the library (*.yaml).
//
//go:embed *.yaml
var FS embed.FS
