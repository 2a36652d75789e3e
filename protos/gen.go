// Package protos holds the protobuf definitions of BarberPro Edge: the stored records
// and Raft commands (booking/v1) and the calendar actor's messages (calendar/v1). The
// generated Go code is committed; `make proto` (go generate ./protos) regenerates it
// with the protoc-gen-go pinned in go.mod's tool directive.
package protos

//go:generate protoc --plugin=protoc-gen-go=../bin/protoc-gen-go --go_out=. --go_opt=paths=source_relative booking/v1/booking.proto calendar/v1/calendar.proto cluster/v1/cluster.proto
