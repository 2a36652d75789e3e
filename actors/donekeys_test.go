package actors

import (
	"fmt"
	"testing"
)

// TestDoneKeys_RemembersTheLastMaxKeys: after any number of keys, the max
// most recent are all answered (with their latest answer), and no more than
// 2*max are kept.
func TestDoneKeys_RemembersTheLastMaxKeys(t *testing.T) {
	const n = 8
	d := newDoneKeys(n)
	for i := 0; i < 5*n+3; i++ {
		d.put(fmt.Sprint("k", i), doneKey{kind: opKind(i % 3)})
		// A repeat of a recent key replaces its answer.
		if i%4 == 0 && i >= 2 {
			d.put(fmt.Sprint("k", i-2), doneKey{hash: []byte("again")})
		}
		for j := max(0, i-n+1); j <= i; j++ {
			if _, ok := d.get(fmt.Sprint("k", j)); !ok {
				t.Fatalf("after k%d: k%d, one of the %d most recent, forgotten", i, j, n)
			}
		}
		if kept := len(d.cur) + len(d.prev); kept > 2*n {
			t.Fatalf("after k%d: %d keys kept, more than %d", i, kept, 2*n)
		}
	}
	if v, _ := d.get("k38"); string(v.hash) != "again" {
		t.Fatalf("a repeated key answers %+v, want its latest answer", v)
	}
	if _, ok := d.get("k0"); ok {
		t.Fatal("k0, 42 keys ago, is still kept")
	}
}

// TestDoneKeys_NewAnswerWinsAcrossARotation: a key answered again after a
// rotation moved its old answer to the previous generation answers with the
// new one (get reads the current generation first).
func TestDoneKeys_NewAnswerWinsAcrossARotation(t *testing.T) {
	const n = 4
	d := newDoneKeys(n)
	d.put("k", doneKey{hash: []byte("old")})
	for i := 1; i < n; i++ {
		d.put(fmt.Sprint("o", i), doneKey{})
	}
	d.put("rotates", doneKey{}) // cur was full: "k" is in prev now
	d.put("k", doneKey{hash: []byte("new")})
	if v, ok := d.get("k"); !ok || string(v.hash) != "new" {
		t.Fatalf("get(k) = %q, %v; want the new answer", v.hash, ok)
	}
}
