package membership

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// boundTransport is memberlist's NetTransport with its outgoing TCP connections
// bound to the node's own IP, so every packet a node sends carries its address
// as the source: peers (and firewall rules between nodes, such as a
// simulation's partitions) see the node, not whatever address the kernel picks.
// UDP already leaves from the bound socket.
//
// With a drop filter (Config.Drop) it also discards the traffic to and from
// the peers the filter names, like a firewall between them.
type boundTransport struct {
	*memberlist.NetTransport
	local *net.TCPAddr

	drop     func(peerIP string) bool // nil: nothing is dropped
	packetCh chan *memberlist.Packet  // filtered PacketCh, with drop
	streamCh chan net.Conn            // filtered StreamCh, with drop
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

var _ memberlist.NodeAwareTransport = (*boundTransport)(nil)

// errDropped is what a dial to a cut-off peer returns.
var errDropped = errors.New("membership: peer cut off by Config.Drop")

func newBoundTransport(bindAddr string, bindPort int, mc *memberlist.Config, drop func(string) bool) (*boundTransport, error) {
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{bindAddr},
		BindPort:  bindPort,
		Logger:    mc.Logger,
	})
	if err != nil {
		return nil, err
	}
	t := &boundTransport{NetTransport: nt, drop: drop}
	if ip := net.ParseIP(bindAddr); ip != nil && !ip.IsUnspecified() {
		t.local = &net.TCPAddr{IP: ip}
	}
	if drop != nil {
		t.packetCh = make(chan *memberlist.Packet)
		t.streamCh = make(chan net.Conn)
		t.stop = make(chan struct{})
		t.wg.Add(2)
		go t.filterPackets()
		go t.filterStreams()
	}
	return t, nil
}

// DialTimeout dials addr from the node's own IP.
func (t *boundTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout dials a.Addr from the node's own IP.
func (t *boundTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.dropped(a.Addr) {
		return nil, errDropped
	}
	d := net.Dialer{Timeout: timeout}
	if t.local != nil {
		d.LocalAddr = t.local
	}
	return d.Dial("tcp", a.Addr)
}

// WriteTo sends a packet to addr, unless the peer is cut off.
func (t *boundTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress sends a packet to a.Addr, unless the peer is cut off (then
// the packet is lost, as on a network that drops it).
func (t *boundTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if t.dropped(a.Addr) {
		return time.Now(), nil
	}
	return t.NetTransport.WriteToAddress(b, a)
}

// PacketCh delivers incoming packets, those of cut-off peers removed.
func (t *boundTransport) PacketCh() <-chan *memberlist.Packet {
	if t.drop == nil {
		return t.NetTransport.PacketCh()
	}
	return t.packetCh
}

// StreamCh delivers incoming streams, those of cut-off peers closed.
func (t *boundTransport) StreamCh() <-chan net.Conn {
	if t.drop == nil {
		return t.NetTransport.StreamCh()
	}
	return t.streamCh
}

// Shutdown closes the listeners and stops the filters.
func (t *boundTransport) Shutdown() error {
	err := t.NetTransport.Shutdown()
	if t.stop != nil {
		t.stopOnce.Do(func() { close(t.stop) })
		t.wg.Wait()
	}
	return err
}

// dropped reports whether traffic with the peer at addr (host:port) is cut.
func (t *boundTransport) dropped(addr string) bool {
	if t.drop == nil {
		return false
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	return t.drop(host)
}

func (t *boundTransport) filterPackets() {
	defer t.wg.Done()
	in := t.NetTransport.PacketCh()
	for {
		select {
		case <-t.stop:
			return
		case p := <-in:
			if p.From != nil && t.dropped(p.From.String()) {
				continue
			}
			select {
			case t.packetCh <- p:
			case <-t.stop:
				return
			}
		}
	}
}

func (t *boundTransport) filterStreams() {
	defer t.wg.Done()
	in := t.NetTransport.StreamCh()
	for {
		select {
		case <-t.stop:
			return
		case c := <-in:
			if t.dropped(c.RemoteAddr().String()) {
				_ = c.Close()
				continue
			}
			select {
			case t.streamCh <- c:
			case <-t.stop:
				_ = c.Close()
				return
			}
		}
	}
}
