package topology

import (
	"errors"
	"testing"
)

func TestDefault_HasArgentineCitiesAndPsychologyPinned(t *testing.T) {
	top := Default()
	for _, name := range []string{"buenos-aires", "cordoba", "rosario", "la-plata"} {
		c, err := top.City(name)
		if err != nil {
			t.Fatal(err)
		}
		if c.Jurisdiction != "ar" || c.Currency != "ARS" || c.Location() == nil {
			t.Errorf("%s: got %+v", name, c)
		}
	}
	us, err := top.City("us-east")
	if err != nil || us.Jurisdiction != "us" {
		t.Fatalf("us-east: %+v %v", us, err)
	}
	p, err := top.Vertical("psychology")
	if err != nil {
		t.Fatal(err)
	}
	if p.Residency != ResidencyHome || p.CacheTTL != 0 || !p.ConsentRequired || !p.EncryptedAtRest {
		t.Errorf("psychology policy: %+v", p)
	}
}

func TestTopology_UnknownNames(t *testing.T) {
	top := Default()
	if _, err := top.City("atlantis"); !errors.Is(err, ErrUnknownCity) {
		t.Errorf("city: %v", err)
	}
	if _, err := top.Vertical("astrology"); !errors.Is(err, ErrUnknownVertical) {
		t.Errorf("vertical: %v", err)
	}
}

func TestParse_RejectsBadDocuments(t *testing.T) {
	cases := map[string]string{
		"bad zone":      "cities: [{name: x, jurisdiction: ar, currency: ARS, timezone: Mars/Olympus}]",
		"missing field": "cities: [{name: x, timezone: UTC}]",
		"duplicate":     "cities: [{name: x, jurisdiction: ar, currency: ARS, timezone: UTC}, {name: x, jurisdiction: ar, currency: ARS, timezone: UTC}]",
		"residency":     "verticals: [{name: v, residency: moon}]",
		"not yaml":      "cities: [",
	}
	for name, doc := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse([]byte(doc)); err == nil {
				t.Fatal("Parse accepted it")
			}
		})
	}
}
