package membership

import (
	"net"
	"time"

	"github.com/hashicorp/memberlist"
)

// boundTransport is memberlist's NetTransport with its outgoing TCP connections
// bound to the node's own IP, so every packet a node sends carries its address
// as the source: peers (and firewall rules between nodes, such as a
// simulation's partitions) see the node, not whatever address the kernel picks.
// UDP already leaves from the bound socket.
type boundTransport struct {
	*memberlist.NetTransport
	local *net.TCPAddr
}

var _ memberlist.NodeAwareTransport = (*boundTransport)(nil)

func newBoundTransport(bindAddr string, bindPort int, mc *memberlist.Config) (*boundTransport, error) {
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{bindAddr},
		BindPort:  bindPort,
		Logger:    mc.Logger,
	})
	if err != nil {
		return nil, err
	}
	t := &boundTransport{NetTransport: nt}
	if ip := net.ParseIP(bindAddr); ip != nil && !ip.IsUnspecified() {
		t.local = &net.TCPAddr{IP: ip}
	}
	return t, nil
}

// DialTimeout dials addr from the node's own IP.
func (t *boundTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout dials a.Addr from the node's own IP.
func (t *boundTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if t.local != nil {
		d.LocalAddr = t.local
	}
	return d.Dial("tcp", a.Addr)
}
