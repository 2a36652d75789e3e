//go:build !race

// The victim is a node in a child process (its death must not end the test
// binary); built without -race like the other tests that run protoactor remotes.

package cluster_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"

	"github.com/barberpro/edge/cluster"
	"github.com/barberpro/edge/cluster/clustertest"
	"github.com/barberpro/edge/cluster/pki"
	clusterv1 "github.com/barberpro/edge/protos/cluster/v1"
)

// TestActorRemoteVictim is the child process of
// Test_ActorRemote_MalformedBatchNeverKillsANode: an ar node that prints its
// actor address and waits to be sent bytes.
func TestActorRemoteVictim(t *testing.T) {
	dir := os.Getenv("BARBERPRO_VICTIM_TLS")
	if dir == "" {
		t.Skip("child process of Test_ActorRemote_MalformedBatchNeverKillsANode only")
	}
	n := clustertest.MustStartNode(t, func(c *cluster.Config) { c.Bind = "127.0.0.71"; c.TLSDir = dir })
	fmt.Printf("ADDR=%s\n", n.ActorAddr())
	time.Sleep(30 * time.Second)
	fmt.Println("SURVIVED")
}

// Test_ActorRemote_MalformedBatchNeverKillsANode: a process holding a valid
// certificate (of another jurisdiction, or of the node's own) sends the ar
// node's actor remote one batch whose indexes, serializer or types protoactor's
// endpoint reader would use unchecked (review 8, finding 1: such a batch ended
// the node's process). The guard drops the stream and the node lives on.
func Test_ActorRemote_MalformedBatchNeverKillsANode(t *testing.T) {
	status := string(proto.MessageName(&clusterv1.NodeStatusReply{}))
	terminated, _ := proto.Marshal(&actor.Terminated{})
	for _, tc := range []struct {
		name, jurisdiction string
		typ                string
		data               []byte
		env                *remote.MessageEnvelope
	}{
		{"sender index from us", "us", status, nil, &remote.MessageEnvelope{Target: 0, TypeId: 0, Sender: 7}},
		{"serializer id from us", "us", status, nil, &remote.MessageEnvelope{Target: 0, TypeId: 0, SerializerId: 9}},
		{"target index from ar", "ar", status, nil, &remote.MessageEnvelope{Target: 3, TypeId: 0}},
		{"type index from ar", "ar", status, nil, &remote.MessageEnvelope{Target: 0, TypeId: 5}},
		{"unknown type from ar", "ar", "no.such.Type", nil, &remote.MessageEnvelope{Target: 0, TypeId: 0}},
		{"terminated without who from ar", "ar", "actor.Terminated", terminated, &remote.MessageEnvelope{Target: 0, TypeId: 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca := clustertest.MustCA(t)
			victim := clustertest.MustIssue(t, ca, pki.Identity{Jurisdiction: "ar", City: "buenos-aires", NodeID: "ba-1"}, "127.0.0.71")
			cmd := exec.Command(os.Args[0], "-test.run=^TestActorRemoteVictim$", "-test.v")
			cmd.Env = append(os.Environ(), "BARBERPRO_VICTIM_TLS="+victim)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			var addr string
			var all strings.Builder
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				all.WriteString(sc.Text() + "\n")
				if a, ok := strings.CutPrefix(sc.Text(), "ADDR="); ok {
					addr = a
					break
				}
			}
			if addr == "" {
				t.Fatalf("victim did not start: %s %s", all.String(), stderr.String())
			}
			done := make(chan error, 1)
			go func() {
				for sc.Scan() {
					all.WriteString(sc.Text() + "\n")
				}
				done <- cmd.Wait()
			}()

			ids := map[string]pki.Identity{
				"us": {Jurisdiction: "us", City: "us-east", NodeID: "us-9"},
				"ar": {Jurisdiction: "ar", City: "cordoba", NodeID: "cba-9"},
			}
			attacker := mustMaterial(t, ca, ids[tc.jurisdiction], "127.0.0.72")
			conn, err := grpc.Dial(addr, grpc.WithTransportCredentials(credentials.NewTLS(attacker.ClientTLS(nil))))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			st, err := remote.NewRemotingClient(conn).Receive(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_ConnectRequest{ConnectRequest: &remote.ConnectRequest{
				ConnectionType: &remote.ConnectRequest_ServerConnection{ServerConnection: &remote.ServerConnection{SystemId: "mallory", Address: "127.0.0.72:1"}}}}}); err != nil {
				t.Fatal(err)
			}
			if _, err := st.Recv(); err != nil {
				t.Fatalf("connect: %v", err)
			}
			tc.env.MessageData = tc.data
			batch := &remote.MessageBatch{
				TypeNames: []string{tc.typ},
				Targets:   []*actor.PID{actor.NewPID(addr, "future$zz")},
				Envelopes: []*remote.MessageEnvelope{tc.env},
			}
			if err := st.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_MessageBatch{MessageBatch: batch}}); err != nil {
				t.Fatal(err)
			}
			// The guard ends the stream: the attacker's next read fails.
			if _, err := st.Recv(); err == nil {
				t.Fatal("the stream stayed open after a malformed batch")
			}
			select {
			case err := <-done:
				t.Fatalf("the ar node's process died (%v):\n%s", err, tail(stderr.String()+all.String()))
			case <-time.After(2 * time.Second):
			}
		})
	}
}

func tail(s string) string {
	if len(s) > 3000 {
		return s[len(s)-3000:]
	}
	return s
}
