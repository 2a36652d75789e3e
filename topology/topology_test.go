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

func TestDefault_PsychologyLicenceAndSessionsOnly(t *testing.T) {
	top := Default()
	for _, v := range top.Verticals {
		psych := v.Name == "psychology"
		if v.LicenseRequired != psych || v.Sessions != psych {
			t.Errorf("%s: license_required %v sessions %v", v.Name, v.LicenseRequired, v.Sessions)
		}
		wantAudit := AuditWrites
		if psych {
			wantAudit = AuditAll
		}
		if v.Audit != wantAudit {
			t.Errorf("%s: audit %q, want %q", v.Name, v.Audit, wantAudit)
		}
		wantPurpose := ""
		if psych {
			wantPurpose = "psychology-care"
		}
		if got := v.ConsentPurpose(); got != wantPurpose {
			t.Errorf("%s: consent purpose %q, want %q", v.Name, got, wantPurpose)
		}
	}
}

func TestParse_VerticalPolicy(t *testing.T) {
	cases := map[string]struct {
		doc string
		ok  bool
	}{
		"audit missing is none":     {"verticals: [{name: v, residency: none}]", true},
		"audit unknown":             {"verticals: [{name: v, residency: none, audit: sometimes}]", false},
		"sessions need encryption":  {"verticals: [{name: v, residency: home, sessions: true}]", false},
		"sessions with encryption":  {"verticals: [{name: v, residency: home, sessions: true, encrypted_at_rest: true, audit: all}]", true},
		"negative cache ttl":        {"verticals: [{name: v, residency: none, cache_ttl: -1s}]", false},
		"licence field is accepted": {"verticals: [{name: v, residency: none, license_required: true}]", true},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			top, err := Parse([]byte(c.doc))
			if (err == nil) != c.ok {
				t.Fatalf("Parse: %v, want ok %v", err, c.ok)
			}
			if err == nil && top.Verticals[0].Audit == "" {
				t.Error("audit left empty")
			}
		})
	}
}
