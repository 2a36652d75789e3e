package runner

import (
	"testing"

	"github.com/barberpro/edge/simulations/history"
	"github.com/barberpro/edge/simulations/traffic"
)

func TestResidencyNeedles(t *testing.T) {
	ops := []history.Op{
		{Kind: history.Book, Vertical: "psychology", ProviderID: "prv_cordoba_p", ClientID: "sim-psy-1-c0", BookingID: "bkg_cordoba_1", Outcome: history.OK},
		{Kind: history.Book, Vertical: "psychology", ProviderID: "prv_cordoba_p", ClientID: "sim-psy-1-c0", BookingID: "bkg_cordoba_2", Outcome: history.Fail},
		{Kind: history.Book, Vertical: "barber", ProviderID: "prv_cordoba_b", ClientID: "sim-1-c0", BookingID: "bkg_cordoba_3", Outcome: history.OK},
	}
	psy := traffic.PsyRecords{Consents: []string{"cns_cordoba_c"}, Series: []string{"srs_cordoba_s"}, Bookings: []string{"bkg_cordoba_4"}, Notes: 2, Marker: "SIMNOTE-1-abc"}
	got := map[string]bool{}
	sealed := ""
	for _, n := range residencyNeedles(ops, psy, []string{"bkg_cordoba_1", "sim-psy-1-c9"}) {
		if got[n.Value] {
			t.Errorf("needle %s twice", n.Value)
		}
		got[n.Value] = true
		if n.Sealed {
			sealed = n.Value
			if !n.Base64 {
				t.Error("the marker is not looked for in base64")
			}
		}
	}
	for _, want := range []string{"prv_cordoba_p", "sim-psy-1-c0", "bkg_cordoba_1", "cns_cordoba_c", "srs_cordoba_s", "bkg_cordoba_4", "sim-psy-1-c9"} {
		if !got[want] {
			t.Errorf("no needle %s", want)
		}
	}
	for _, not := range []string{"bkg_cordoba_2", "prv_cordoba_b", "sim-1-c0", "bkg_cordoba_3"} {
		if got[not] {
			t.Errorf("needle %s: not psychology or not acknowledged", not)
		}
	}
	if sealed != "SIMNOTE-1-abc" {
		t.Errorf("sealed needle %q, want the marker", sealed)
	}
}
