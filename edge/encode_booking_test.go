package edge

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
)

// TestAppendBookingMatchesMarshal: appendBooking writes the bytes json.Marshal
// writes for the same bookingOut (and the newline jsonAnswer adds), for
// optional fields set and unset and strings that need escapes (quotes,
// control bytes, HTML characters, non-ASCII, invalid UTF-8).
func TestAppendBookingMatchesMarshal(t *testing.T) {
	strs := []string{"", "bkg_buenos-aires_01J", "a\"b\\c", "<script>&", "\x00\x1f\n\t", "Peña ñandú", "\xff\xfe", "\u2028\u2029", "2026-12-01T09:00:00-03:00"}
	// Every field is set below: one added to bookingOut must be added here
	// (and to appendBooking), or an omitempty one would pass unseen.
	if n := reflect.TypeOf(bookingOut{}).NumField(); n != 12 {
		t.Fatalf("bookingOut has %d fields, this test sets 12", n)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func() string { return strs[rng.IntN(len(strs))] }
	for i := 0; i < 2000; i++ {
		o := bookingOut{
			ID: pick(), Status: pick(), ProviderID: pick(), ServiceID: pick(), ClientID: pick(),
			Start: pick(), End: pick(), Price: moneyJSON{Amount: pick(), Currency: pick()},
			SeriesID: pick(), CancelReason: pick(), SessionStatus: pick(), Erased: rng.IntN(2) == 0,
		}
		want, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, '\n')
		if got := appendBooking(nil, &o); string(got) != string(want) {
			t.Fatalf("appendBooking(%+v)\n got %s\nwant %s", o, got, want)
		}
	}
}
