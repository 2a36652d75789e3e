package membership

import (
	"errors"
	"testing"
	"time"
)

func TestConfig_Validate(t *testing.T) {
	base := func() Config {
		c := DefaultConfig()
		c.Meta = fullMeta()
		c.Meta.BootID = ""
		c.SecretKey = make([]byte, 32)
		return c
	}
	if err := base().Validate(); err != nil {
		t.Fatalf("default: %v", err)
	}
	local := LocalConfig()
	local.Meta = fullMeta()
	if err := local.Validate(); err != nil {
		t.Fatalf("local: %v", err)
	}
	for name, mut := range map[string]func(*Config){
		"no key in production": func(c *Config) { c.SecretKey = nil },
		"short key":            func(c *Config) { c.SecretKey = make([]byte, 10) },
		"bad bind":             func(c *Config) { c.BindAddr = "localhost" },
		"bad port":             func(c *Config) { c.BindPort = 70000 },
		"probe timeout >= interval": func(c *Config) {
			c.ProbeTimeout = c.ProbeInterval
		},
		"zero gossip":       func(c *Config) { c.GossipInterval = 0 },
		"zero suspicion":    func(c *Config) { c.SuspicionMult = 0 },
		"negative reclaim":  func(c *Config) { c.DeadNodeReclaimTime = -time.Second },
		"no event buffer":   func(c *Config) { c.EventBuffer = 0 },
		"no logger":         func(c *Config) { c.Logger = nil },
		"no city":           func(c *Config) { c.Meta.City = "" },
		"zero join timeout": func(c *Config) { c.JoinTimeout = 0 },
	} {
		t.Run(name, func(t *testing.T) {
			c := base()
			mut(&c)
			if err := c.Validate(); !errors.Is(err, ErrBadConfig) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func TestNew_FillsBootIDAndStartsNothing(t *testing.T) {
	c := LocalConfig()
	c.Meta = fullMeta()
	c.Meta.BootID = ""
	m, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	if m.Local().BootID == "" {
		t.Fatal("no boot id")
	}
	if m.GossipAddr() != "" || len(m.Members()) != 0 {
		t.Fatal("New must not start gossip")
	}
	if err := m.Leave(time.Second); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("Leave before Start: %v", err)
	}
}
