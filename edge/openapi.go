package edge

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
)

// openAPIYAML is the OpenAPI 3.0.3 description of the API: every route, schema and
// problem. Tests drive every route through the handler and validate requests and
// answers against it, and check that its paths are exactly the routes served.
//
//go:embed openapi.yaml
var openAPIYAML []byte

var (
	specOnce sync.Once
	specDoc  *openapi3.T
	specJSON []byte
	specErr  error
)

// OpenAPI returns the parsed and validated OpenAPI document of the API.
func OpenAPI() (*openapi3.T, error) {
	specOnce.Do(func() {
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(openAPIYAML)
		if err != nil {
			specErr = fmt.Errorf("edge: openapi.yaml: %w", err)
			return
		}
		if err := doc.Validate(loader.Context); err != nil {
			specErr = fmt.Errorf("edge: openapi.yaml: %w", err)
			return
		}
		addTraceHeaders(doc) // every operation's X-Request-Id and traceparent
		b, err := json.Marshal(doc)
		if err != nil {
			specErr = fmt.Errorf("edge: openapi.yaml: %w", err)
			return
		}
		specDoc, specJSON = doc, b
	})
	return specDoc, specErr
}

// openAPIJSON returns the document as served at /openapi.json.
func openAPIJSON() ([]byte, error) {
	if _, err := OpenAPI(); err != nil {
		return nil, err
	}
	return specJSON, nil
}
