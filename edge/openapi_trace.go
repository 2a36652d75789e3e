package edge

import (
	"github.com/getkin/kin-openapi/openapi3"

	"github.com/barberpro/edge/reqtrace"
)

// addTraceHeaders declares on every operation of doc what every route takes and
// answers (reqid.go): the X-Request-Id and traceparent request headers, and the
// same two headers on every answer. openapi.yaml defines them once, in
// components; this keeps each operation from repeating them.
func addTraceHeaders(doc *openapi3.T) {
	params := []*openapi3.ParameterRef{
		{Ref: "#/components/parameters/RequestId", Value: doc.Components.Parameters["RequestId"].Value},
		{Ref: "#/components/parameters/Traceparent", Value: doc.Components.Parameters["Traceparent"].Value},
	}
	headers := map[string]*openapi3.HeaderRef{
		reqtrace.RequestIDHeader:   {Ref: "#/components/headers/RequestId", Value: doc.Components.Headers["RequestId"].Value},
		reqtrace.TraceparentHeader: {Ref: "#/components/headers/Traceparent", Value: doc.Components.Headers["Traceparent"].Value},
	}
	seen := map[*openapi3.Response]bool{}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			op.Parameters = append(op.Parameters, params...)
			for _, rr := range op.Responses.Map() {
				r := rr.Value
				if r == nil || seen[r] {
					continue
				}
				seen[r] = true
				if rr.Ref != "" {
					continue // a components response: below
				}
				addHeaders(r, headers)
			}
		}
	}
	for _, rr := range doc.Components.Responses {
		if rr.Value != nil {
			addHeaders(rr.Value, headers)
		}
	}
}

func addHeaders(r *openapi3.Response, hs map[string]*openapi3.HeaderRef) {
	if r.Headers == nil {
		r.Headers = openapi3.Headers{}
	}
	for k, h := range hs {
		if _, ok := r.Headers[k]; !ok {
			r.Headers[k] = h
		}
	}
}
