package ids

import (
	"strings"
	"testing"
	"time"
)

func TestCityOf(t *testing.T) {
	for _, c := range []struct {
		id, city string
		ok       bool
	}{
		{"prv_buenos-aires_k3j4q7abcdefghijklmn", "buenos-aires", true},
		{"bkg_la-plata_000001", "la-plata", true},
		{"prv_us-east_x", "us-east", true},
		{"bkg_cordoba_a_b_c", "cordoba", true}, // the random part may hold '_'
		{"prv_c0rd0ba-2_x", "c0rd0ba-2", true},
		{"prv_" + strings.Repeat("a", MaxCityLen) + "_x", strings.Repeat("a", MaxCityLen), true},

		{"", "", false},
		{"prv", "", false},
		{"prv_", "", false},
		{"prv__x", "", false},             // empty city
		{"prv_cordoba", "", false},        // no random part
		{"prv_cordoba_", "", false},       // empty random part
		{"svc_cordoba_x", "", false},      // services do not route
		{"rsc_cordoba_x", "", false},      // nor anything else
		{"PRV_cordoba_x", "", false},      // kinds are lower-case
		{"prv_Cordoba_x", "", false},      // cities are lower-case
		{"prv_-cordoba_x", "", false},     // no leading '-'
		{"prv_cordoba-_x", "", false},     // no trailing '-'
		{"prv_cór-doba_x", "", false},     // ASCII only
		{"prv_cordoba_x/y", "", false},    // no '/'
		{"prv_cordoba_x y", "", false},    // no space
		{"prv_cordoba_x\x00", "", false},  // no control bytes
		{"prv_cordoba_x\x7f", "", false},  // no DEL
		{"prv_000001", "", false},         // legacy ids have no city
		{"prv_buenos aires_x", "", false}, // no space in the city
		{"prv_" + strings.Repeat("a", MaxCityLen+1) + "_x", "", false},
		{"bkg_cordoba_" + strings.Repeat("x", MaxIDLen), "", false}, // too long
	} {
		city, ok := CityOf(c.id)
		if city != c.city || ok != c.ok {
			t.Errorf("CityOf(%q) = %q, %v; want %q, %v", c.id, city, ok, c.city, c.ok)
		}
	}
}

func TestPrefixRoundTrip(t *testing.T) {
	for _, kind := range []string{Provider, Booking, Consent, Series} {
		for _, city := range []string{"buenos-aires", "cordoba", "rosario", "la-plata", "us-east", "sao-paulo"} {
			id := Prefix(kind, city) + "_k3j4q7"
			if got, ok := CityOf(id); !ok || got != city {
				t.Errorf("CityOf(%q) = %q, %v", id, got, ok)
			}
		}
	}
}

// FuzzCityOf checks CityOf on arbitrary strings: it never panics, and when it
// accepts an id the city is a valid city that rebuilds the id's prefix.
func FuzzCityOf(f *testing.F) {
	for _, s := range []string{
		"prv_buenos-aires_k3j4q7abcdefghijklmn", "bkg_la-plata_000001", "bkg_cordoba_a_b_c",
		"", "prv", "prv__x", "prv_cordoba_", "svc_cordoba_x", "prv_-x_y", "prv_cór-doba_x", "prv_x_\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		city, ok := CityOf(id)
		if !ok {
			if city != "" {
				t.Fatalf("CityOf(%q) = %q, false", id, city)
			}
			return
		}
		if !ValidCity(city) || strings.Contains(city, "_") {
			t.Fatalf("CityOf(%q) = invalid city %q", id, city)
		}
		if !strings.HasPrefix(id, Prefix(Provider, city)+"_") && !strings.HasPrefix(id, Prefix(Booking, city)+"_") {
			t.Fatalf("CityOf(%q) = %q, not the id's prefix", id, city)
		}
		if len(id) <= len(Prefix(Provider, city))+1 {
			t.Fatalf("CityOf(%q) accepted an id without a random part", id)
		}
	})
}

// TestNew_SortsByCreationTime: ids made later sort after ids made earlier, also
// across the base32 alphabet's digit/letter boundary and over decades, and each
// routes to its city. A plain base32 alphabet ("a".."z", then "2".."7") fails it.
func TestNew_SortsByCreationTime(t *testing.T) {
	prefix := Prefix(Booking, "buenos-aires")
	base := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	var prev string
	for _, step := range []time.Duration{0, time.Millisecond, 31 * time.Millisecond, time.Second, time.Hour, 24 * time.Hour, 365 * 24 * time.Hour, 30 * 365 * 24 * time.Hour} {
		for i := 0; i < 64; i++ {
			at := base.Add(step + time.Duration(i)*time.Millisecond)
			id := NewAt(prefix, at)
			if city, ok := CityOf(id); !ok || city != "buenos-aires" {
				t.Fatalf("NewAt = %q does not route: %q %v", id, city, ok)
			}
			if len(id) != len(prefix)+1+26 {
				t.Fatalf("NewAt = %q: want 26 characters after the prefix", id)
			}
			if prev != "" && id <= prev && !at.Equal(base.Add(step)) {
				t.Fatalf("%q (at %v) sorts before the earlier %q", id, at, prev)
			}
			prev = id
		}
	}
}

// TestNew_Unique: ids made in the same millisecond differ (80 random bits).
func TestNew_Unique(t *testing.T) {
	at := time.Now()
	seen := map[string]bool{}
	for i := 0; i < 100_000; i++ {
		id := NewAt("bkg_cordoba", at)
		if seen[id] {
			t.Fatalf("%q made twice", id)
		}
		seen[id] = true
	}
}
