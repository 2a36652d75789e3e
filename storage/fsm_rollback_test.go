package storage_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"testing"

	"github.com/barberpro/edge/storage"
)

// TestFSM_ApplyAfterRollbackMatchesGolden applies the first half of
// TestFSM_ApplyGolden's log, then the second half in a transaction rolled
// back (its provider writes, audit appends and bookings reach the FSM's
// providerCache, not fsm.db), then the second half for real: every result
// and the final state must be those of the FSM that never rolled back.
func TestFSM_ApplyAfterRollbackMatchesGolden(t *testing.T) {
	for seed := int64(1); seed <= 2; seed++ {
		r, logs := goldenSeed(t, seed)
		a := openGoldenFSM(t, "a.db")
		want := applyGolden(t, r, a, logs)

		half := len(logs) / 2
		b := openGoldenFSM(t, "b.db")
		got := applyGolden(t, r, b, logs[:half])
		// Several rolled back attempts, each over a different part of the
		// rest, as a batch retried after failed writes would be.
		for from := half; from < len(logs); from += 97 {
			if err := b.ApplyRolledBack(logs[from:]); err != nil {
				t.Fatal(err)
			}
			if from == half {
				got = append(got, applyGolden(t, r, b, logs[half:half+1])...)
			}
		}
		got = append(got, applyGolden(t, r, b, logs[half+1:])...)
		rh := sha256.New()
		for _, b := range got {
			rh.Write(b)
		}
		if g, w := hex.EncodeToString(rh.Sum(nil)), goldenApply[seed][0]; g != w {
			t.Errorf("seed %d: results after rolled back transactions hash to %s, main 9baa523's to %s", seed, g, w)
		}
		if !slices.EqualFunc(got, want, bytes.Equal) {
			t.Errorf("seed %d: results after rolled back transactions differ from the FSM's that had none", seed)
		}
		if sa, sb := stateHash(t, a), stateHash(t, b); !bytes.Equal(sa, sb) {
			t.Errorf("seed %d: state after rolled back transactions %x, want %x", seed, sb, sa)
		}
		for _, f := range []*storage.TestFSM{a, b} {
			if err := f.CheckProviderCache(); err != nil {
				t.Errorf("seed %d: %v", seed, err)
			}
		}
		if rep, err := b.VerifyAudit(); err != nil {
			t.Errorf("seed %d: audit chain after rolled back transactions: %v (%+v)", seed, err, rep)
		}
	}
}
