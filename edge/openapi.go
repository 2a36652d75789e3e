package edge

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"github.com/barberpro/edge/topology"

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
		topologyEnums(doc, topology.Default())
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

// topologyEnums makes the spec as strict as the server about names: every
// property or query parameter named city, vertical or currency (and
// jurisdiction) lists the embedded topology's values as its enum, so generated
// clients and fuzzers send only names the server knows.
func topologyEnums(doc *openapi3.T, t *topology.Topology) {
	var currencies, jurisdictions []any
	for _, c := range t.Cities {
		if !slices.Contains(currencies, any(c.Currency)) {
			currencies = append(currencies, c.Currency)
		}
		if !slices.Contains(jurisdictions, any(c.Jurisdiction)) {
			jurisdictions = append(jurisdictions, c.Jurisdiction)
		}
	}
	enums := map[string][]any{
		"city":         anySlice(t.CityNames()),
		"vertical":     anySlice(t.VerticalNames()),
		"currency":     currencies,
		"jurisdiction": jurisdictions,
	}
	set := func(name string, s *openapi3.SchemaRef) {
		if e, ok := enums[name]; ok && s != nil && s.Value != nil && s.Value.Type.Is("string") && s.Value.Enum == nil {
			s.Value.Enum = e
		}
	}
	for _, s := range doc.Components.Schemas {
		if s.Value == nil {
			continue
		}
		for name, p := range s.Value.Properties {
			set(name, p)
		}
	}
	for _, path := range doc.Paths.Map() {
		for _, op := range path.Operations() {
			for _, p := range op.Parameters {
				if p.Value != nil && p.Value.In == "query" {
					set(p.Value.Name, p.Value.Schema)
				}
			}
		}
	}
}

func anySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
