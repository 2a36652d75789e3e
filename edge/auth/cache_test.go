package auth

import (
	"testing"
	"time"
)

func TestTokenCache_ReusesThenRenews(t *testing.T) {
	dir := t.TempDir()
	if err := Init(dir); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSigner(dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	s.Now = func() time.Time { return now }
	c := NewTokenCache(s, time.Hour)
	a, err := c.Token(RoleClient, "cli-ana")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := c.Token(RoleClient, "cli-ana"); b != a {
		t.Fatal("a second call within the TTL signed a new token")
	}
	if o, _ := c.Token(RoleProvider, "cli-ana"); o == a {
		t.Fatal("another role got the same token")
	}
	now = now.Add(50 * time.Minute) // past three quarters of the TTL
	b, err := c.Token(RoleClient, "cli-ana")
	if err != nil || b == a {
		t.Fatalf("a token near its expiry was not renewed (err %v)", err)
	}
	if _, err := c.Token(RoleClient, ""); err == nil {
		t.Fatal("an empty subject got a token")
	}
}
