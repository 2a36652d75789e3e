package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/barberpro/edge/edge/auth"
)

func TestPercentile_NearestRank(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	cases := []struct {
		in   []time.Duration
		q    float64
		want time.Duration
	}{
		{nil, 0.5, 0},
		{ms(7), 0.99, 7 * time.Millisecond},
		{ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 0.9, 9 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 0.99, 10 * time.Millisecond},
		{ms(1, 2, 3), 0, 1 * time.Millisecond},
	}
	for _, c := range cases {
		if got := Percentile(c.in, c.q); got != c.want {
			t.Errorf("Percentile(%v, %v) = %v, want %v", c.in, c.q, got, c.want)
		}
	}
}

func TestConfig_RejectsBadMode(t *testing.T) {
	c := Config{Targets: []string{"http://127.0.0.1:1"}, Mode: "lukewarm"}
	if err := c.defaults(); err == nil {
		t.Fatal("accepted mode lukewarm")
	}
	c = Config{}
	if err := c.defaults(); err == nil {
		t.Fatal("accepted no targets")
	}
	for name, bad := range map[string]Config{
		"mode":      {Mode: "lukewarm"},
		"clients":   {Clients: -1},
		"duration":  {Duration: -time.Second},
		"providers": {Providers: -1},
		"mix":       {Mix: Mix{Book: -1, List: 2}},
		"shares":    {Shares: []CityShare{{City: "buenos-aires", Share: 0}}},
		"https":     {Mode: Spread, Targets: []string{"http://127.0.0.1:1", "https://127.0.0.1:2"}},
	} {
		if bad.Targets == nil {
			bad.Targets = []string{"http://127.0.0.1:1"}
		}
		bad.Tokens = noTokens{}
		if err := bad.defaults(); !errors.Is(err, ErrBadConfig) {
			t.Errorf("bad %s: %v, want ErrBadConfig", name, err)
		}
	}
	good := Config{Targets: []string{"http://127.0.0.1:1"}, Tokens: noTokens{}}
	if err := good.defaults(); err != nil || good.Think != DefaultThink || good.Mix != DefaultMix || good.Seed != 1 {
		t.Fatalf("defaults: %v %+v", err, good)
	}
}

type noTokens struct{}

func (noTokens) Token(auth.Role, string) (string, error) { return "", nil }

// TestRun_UnansweredRequestsAreUnfinished: a node that creates providers but
// never answers a booking gives a run of 0 OK and 0 errors; Unfinished says
// why (one request per client cut off by the run's end), in the JSON and the
// summary line.
func TestRun_UnansweredRequestsAreUnfinished(t *testing.T) {
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v1/providers":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, `{"id":"prv_buenos-aires_%d","name":"p","timezone":"America/Argentina/Buenos_Aires","services":[{"id":"svc_1","name":"Corte","duration_minutes":15}]}`, time.Now().UnixNano())
		case r.URL.Path == "/v1/bookings":
			select { // taken, never answered
			case <-r.Context().Done():
			case <-hang:
			}
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	defer close(hang)
	r, err := Run(context.Background(), Config{Targets: []string{srv.URL}, Clients: 3, Duration: 300 * time.Millisecond,
		Mode: Spread, Tokens: noTokens{}})
	if err != nil {
		t.Fatal(err)
	}
	if r.OK != 0 || r.Errors != 0 || r.Unfinished != 3 {
		t.Fatalf("ok %d, errors %d, unfinished %d; want 0, 0, 3", r.OK, r.Errors, r.Unfinished)
	}
	raw, _ := json.Marshal(r)
	if !strings.Contains(string(raw), `"unfinished":3`) || !strings.Contains(r.String(), "unfinished=3") {
		t.Fatalf("unfinished not reported:\n%s\n%s", raw, r)
	}
}
