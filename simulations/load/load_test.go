package load

import (
	"testing"
	"time"
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
}
