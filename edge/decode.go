package edge

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Defaults and bounds of ?limit=.
const (
	defaultLimit = 50
	maxLimit     = 500
)

// readBody reads the request body, at most MaxBodyBytes; a larger body is 413.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, &apiError{http.StatusRequestEntityTooLarge, CodePayloadTooLarge, "the request body is larger than " + strconv.FormatInt(s.cfg.MaxBodyBytes, 10) + " bytes", nil}

		}
		return nil, badRequest("reading the request body: %v", err)
	}
	return b, nil
}

// decodeBody decodes the JSON object of the request body into dst: a JSON media
// type, at most MaxBodyBytes, exactly one JSON object, no unknown fields. When the
// body is empty, decodeBody returns (false, nil) if optional, else a 400.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, dst any, optional bool) (bool, error) {
	b, err := s.readBody(w, r)
	if err != nil {
		return false, err
	}
	if len(bytes.TrimSpace(b)) == 0 && optional {
		return false, nil
	}
	err = s.decodeJSON(r, b, dst, optional)
	return err == nil, err
}

// decodeJSON is decodeBody for a body already read (b).
func (s *Server) decodeJSON(r *http.Request, b []byte, dst any, optional bool) error {
	if len(bytes.TrimSpace(b)) == 0 {
		if optional {
			return nil
		}
		return badRequest("a JSON request body is required")
	}
	if err := checkJSONType(r.Header.Get("Content-Type")); err != nil {
		return err
	}
	if trimmed := bytes.TrimLeft(b, " \t\r\n"); trimmed[0] != '{' {
		return badRequest("the request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("the request body must hold exactly one JSON value")
	}
	return nil
}

// checkJSONType accepts application/json and any application/*+json (such as
// application/merge-patch+json); anything else is 415.
func checkJSONType(ct string) error {
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))) {
		return nil
	}
	if ct == "" {
		ct = "none"
	}
	return &apiError{http.StatusUnsupportedMediaType, CodeUnsupportedMediaType, "Content-Type must be application/json, not " + strconv.Quote(ct), nil}

}

// jsonError turns a decoding error into a 400 that names the field.
func jsonError(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return badRequest("malformed JSON at byte %d: %v", syntax.Offset, syntax)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "the body"
		}
		return badRequest("field %s: expected %s, got JSON %s", field, jsonTypeName(typ.Type.Kind().String()), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("malformed JSON: the body ends too early")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return badRequest("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	default:
		return badRequest("malformed JSON: %v", err)
	}
}

// jsonTypeName names a Go kind as a JSON type.
func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "struct", "map", "ptr":
		return "an object"
	default:
		return kind
	}
}

// queryInt reads an optional integer query parameter: absent gives def; not an
// integer is 400; outside [lo, hi] is 422.
func queryInt(q url.Values, name string, def, lo, hi int) (int, error) {
	v := q.Get(name)
	if v == "" && !q.Has(name) {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, badRequest("query parameter %s=%q must be an integer", name, v)
	}
	if n < lo || n > hi {
		return 0, invalid("query parameter %s=%d must be between %d and %d", name, n, lo, hi)
	}
	return n, nil
}

// queryLimit reads ?limit= (default 50, 1..500).
func queryLimit(q url.Values) (int, error) {
	return queryInt(q, "limit", defaultLimit, 1, maxLimit)
}

// writeJSON answers v as application/json.
func writeJSON(w http.ResponseWriter, status int, v any) {
	writeJSONAs(w, status, "application/json", v)
}

// writeJSONAs answers v as JSON with the given media type.
func writeJSONAs(w http.ResponseWriter, status int, contentType string, v any) {
	status, contentType, body := jsonAnswer(status, contentType, v)
	writeBody(w, status, contentType, body)
}

// jsonAnswer is v's JSON (and a newline) with the status and media type to
// answer it with; if v does not encode, the 500 problem saying so.
func jsonAnswer(status int, contentType string, v any) (int, string, []byte) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own answer types are marshalled; they always encode.
		status, contentType = http.StatusInternalServerError, problemContentType
		b = []byte(`{"type":"` + ProblemTypePrefix + CodeInternalError + `","title":"Internal error","status":500,"detail":"encoding the answer failed","code":"internal_error"}`)
	}
	return status, contentType, append(b, '\n')
}

// writeBody answers body, already encoded and ending in its newline, with the
// headers of every JSON answer, in one Write.
func writeBody(w http.ResponseWriter, status int, contentType string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
