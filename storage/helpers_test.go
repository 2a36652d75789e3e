package storage_test

import (
	"testing"

	"google.golang.org/protobuf/proto"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
)

// mustMarshal encodes cmd as a one-command CommandBatch log payload.
func mustMarshal(t testing.TB, cmds ...*bookingv1.Command) []byte {
	t.Helper()
	b, err := proto.Marshal(&bookingv1.CommandBatch{Commands: cmds})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
