// Package topology holds the configuration of where BarberPro runs: its cities (with
// their jurisdiction, IANA time zone and currency) and its verticals (with their cache,
// residency, encryption, consent and audit policy). It is pure data with an embedded
// default, imports nothing of the project, and may be imported by any package.
package topology

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"
	_ "time/tzdata" // IANA zones inside the binary: a fresh machine may lack /usr/share/zoneinfo

	"gopkg.in/yaml.v3"
)

//go:embed topology.yaml
var defaultYAML []byte

// ErrUnknownCity is returned when a city is not in the topology.
var ErrUnknownCity = errors.New("topology: unknown city")

// ErrUnknownVertical is returned when a vertical is not in the topology.
var ErrUnknownVertical = errors.New("topology: unknown vertical")

// City is an edge location.
type City struct {
	Name         string `yaml:"name"`
	Jurisdiction string `yaml:"jurisdiction"`
	Timezone     string `yaml:"timezone"`
	Currency     string `yaml:"currency"`

	loc *time.Location
}

// Location is the city's time zone, loaded when the topology was parsed.
func (c City) Location() *time.Location { return c.loc }

// Residency says where a vertical's data may live.
type Residency string

const (
	// ResidencyNone lets data be served, cached and stored on any node.
	ResidencyNone Residency = "none"
	// ResidencyHome pins data to the provider's home jurisdiction.
	ResidencyHome Residency = "home"
)

// Audit says which requests about a vertical's data append audit entries.
type Audit string

const (
	// AuditNone records nothing.
	AuditNone Audit = "none"
	// AuditWrites records every write (create, cancel, reschedule, move...).
	AuditWrites Audit = "writes"
	// AuditAll records every read and write, allowed or refused.
	AuditAll Audit = "all"
)

// Vertical is the policy of a line of business. Every field drives code (the
// edge): a field that nothing enforces must not exist.
type Vertical struct {
	Name string `yaml:"name"`
	// CacheTTL is the Cache-Control of the edge's GET answers about the
	// vertical's data: 0 no-store (also on errors about it), else max-age.
	CacheTTL time.Duration `yaml:"cache_ttl"`
	// Residency home: the data is served only by nodes of the provider's
	// jurisdiction (others relay) and a residency check flags it elsewhere.
	Residency Residency `yaml:"residency"`
	// EncryptedAtRest: health fields (session notes) are accepted only for
	// verticals with it, and are sealed before they are proposed.
	EncryptedAtRest bool `yaml:"encrypted_at_rest"`
	// ConsentRequired: a booking needs an active consent of its client for
	// ConsentPurpose in the provider's jurisdiction.
	ConsentRequired bool `yaml:"consent_required"`
	// Audit: which requests append audit entries (none, writes, all).
	Audit Audit `yaml:"audit"`
	// LicenseRequired: a provider needs a licence to be created and an
	// operator's verification to take bookings.
	LicenseRequired bool `yaml:"license_required"`
	// Sessions: the vertical's bookings are sessions (status, notes).
	Sessions bool `yaml:"sessions"`
}

// ConsentPurpose is the consent purpose a booking of v needs ("psychology-care"),
// "" when v requires no consent.
func (v Vertical) ConsentPurpose() string {
	if !v.ConsentRequired {
		return ""
	}
	return v.Name + "-care"
}

// Topology is the set of cities and verticals a cluster knows.
type Topology struct {
	Cities    []City     `yaml:"cities"`
	Verticals []Vertical `yaml:"verticals"`
}

// Default returns the embedded topology. It panics only if the embedded file is
// invalid, which a test rules out.
func Default() *Topology {
	t, err := Parse(defaultYAML)
	if err != nil {
		panic(err)
	}
	return t
}

// Load reads a topology file; an empty path gives the embedded default.
func Load(path string) (*Topology, error) {
	if path == "" {
		return Default(), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	return Parse(b)
}

// Parse decodes and validates a topology document.
func Parse(b []byte) (*Topology, error) {
	var t Topology
	if err := yaml.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	seen := map[string]bool{}
	for i := range t.Cities {
		c := &t.Cities[i]
		if c.Name == "" || c.Jurisdiction == "" || c.Currency == "" {
			return nil, fmt.Errorf("topology: city %d needs name, jurisdiction and currency", i)
		}
		if seen[c.Name] {
			return nil, fmt.Errorf("topology: city %q listed twice", c.Name)
		}
		seen[c.Name] = true
		loc, err := time.LoadLocation(c.Timezone)
		if err != nil {
			return nil, fmt.Errorf("topology: city %q: %w", c.Name, err)
		}
		c.loc = loc
	}
	for i := range t.Verticals {
		v := &t.Verticals[i]
		if v.Audit == "" {
			v.Audit = AuditNone
		}
		if v.Residency != ResidencyNone && v.Residency != ResidencyHome {
			return nil, fmt.Errorf("topology: vertical %q: residency must be none or home, not %q", v.Name, v.Residency)
		}
		if v.Audit != AuditNone && v.Audit != AuditWrites && v.Audit != AuditAll {
			return nil, fmt.Errorf("topology: vertical %q: audit must be none, writes or all, not %q", v.Name, v.Audit)
		}
		if v.Sessions && !v.EncryptedAtRest {
			return nil, fmt.Errorf("topology: vertical %q: sessions hold notes (health data), so encrypted_at_rest must be true", v.Name)
		}
		if v.CacheTTL < 0 {
			return nil, fmt.Errorf("topology: vertical %q: cache_ttl must not be negative", v.Name)
		}
	}
	return &t, nil
}

// City returns the named city or ErrUnknownCity.
func (t *Topology) City(name string) (City, error) {
	i := slices.IndexFunc(t.Cities, func(c City) bool { return c.Name == name })
	if i < 0 {
		return City{}, fmt.Errorf("%w: %q", ErrUnknownCity, name)
	}
	return t.Cities[i], nil
}

// Vertical returns the named vertical or ErrUnknownVertical.
func (t *Topology) Vertical(name string) (Vertical, error) {
	i := slices.IndexFunc(t.Verticals, func(v Vertical) bool { return v.Name == name })
	if i < 0 {
		return Vertical{}, fmt.Errorf("%w: %q", ErrUnknownVertical, name)
	}
	return t.Verticals[i], nil
}

// CityNames lists the cities in topology order.
func (t *Topology) CityNames() []string {
	names := make([]string, len(t.Cities))
	for i, c := range t.Cities {
		names[i] = c.Name
	}
	return names
}

// VerticalNames lists the verticals in topology order.
func (t *Topology) VerticalNames() []string {
	names := make([]string, len(t.Verticals))
	for i, v := range t.Verticals {
		names[i] = v.Name
	}
	return names
}
