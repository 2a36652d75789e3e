package failpoint

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// TagPrefix starts the comment of every iptables rule a simulation adds, so a
// sweep finds them (and only them).
const TagPrefix = "barberpro-sim"

// Tag is the comment of the rules of a simulation whose cluster starts at
// 127.0.0.<ipBase>: scenarios on different address blocks sweep only their own.
func Tag(ipBase int) string { return fmt.Sprintf("%s-%d", TagPrefix, ipBase) }

// Rule drops packets from Src to Dst (loopback IPs), on the INPUT chain. Nodes
// dial from their own IP, so a source-based rule cuts exactly one direction.
// A non-zero DPort narrows it to TCP packets to that port (and SPort to TCP
// packets from that port): a pair of them cuts one protocol, e.g. Raft, and
// leaves gossip and actor traffic alone.
type Rule struct {
	Src, Dst     string
	DPort, SPort int
}

// Args is the iptables argv (without the program name) that adds (add true,
// inserted first in INPUT so no earlier ACCEPT bypasses it) or deletes the rule,
// tagged with tag.
func (r Rule) Args(add bool, tag string) []string {
	op := "-D"
	if add {
		op = "-I"
	}
	args := []string{"-w", "5", op, "INPUT", "-s", r.Src, "-d", r.Dst}
	if r.DPort != 0 || r.SPort != 0 {
		args = append(args, "-p", "tcp")
	}
	if r.DPort != 0 {
		args = append(args, "--dport", strconv.Itoa(r.DPort))
	}
	if r.SPort != 0 {
		args = append(args, "--sport", strconv.Itoa(r.SPort))
	}
	return append(args, "-m", "comment", "--comment", tag, "-j", "DROP")
}

// IPTables adds, removes and sweeps the tagged rules of one simulation. The zero
// value is not usable; use NewIPTables.
type IPTables struct {
	// Tag is the comment on every rule it adds.
	Tag string
	// Run executes iptables with args and returns its combined output. Default:
	// the iptables binary on PATH.
	Run func(args ...string) ([]byte, error)
}

// ErrNoIPTables is returned when iptables cannot be used: not installed, or not
// root. It wraps ErrSkip: a scenario that needs partitions is skipped here, not
// failed.
var ErrNoIPTables = fmt.Errorf("%w: iptables unavailable", ErrSkip)

// NewIPTables returns an IPTables running the real binary.
func NewIPTables(tag string) *IPTables {
	return &IPTables{Tag: tag, Run: func(args ...string) ([]byte, error) {
		return exec.Command("iptables", args...).CombinedOutput()
	}}
}

// Available reports nil when iptables can be used: the binary is on PATH, the
// process is root, and listing the INPUT chain works.
func (t *IPTables) Available() error {
	if _, err := exec.LookPath("iptables"); err != nil {
		return fmt.Errorf("%w: %v", ErrNoIPTables, err)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: not root", ErrNoIPTables)
	}
	if out, err := t.Run("-w", "5", "-S", "INPUT"); err != nil {
		return fmt.Errorf("%w: iptables -S INPUT: %v: %s", ErrNoIPTables, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Add installs rules; on error it removes the ones it added.
func (t *IPTables) Add(rules ...Rule) error {
	for i, r := range rules {
		if out, err := t.Run(r.Args(true, t.Tag)...); err != nil {
			t.Remove(rules[:i]...)
			return fmt.Errorf("failpoint: iptables %s: %v: %s", strings.Join(r.Args(true, t.Tag), " "), err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// Remove deletes rules, trying every one; it returns the first error.
func (t *IPTables) Remove(rules ...Rule) error {
	var first error
	for _, r := range rules {
		if out, err := t.Run(r.Args(false, t.Tag)...); err != nil && first == nil {
			first = fmt.Errorf("failpoint: iptables %s: %v: %s", strings.Join(r.Args(false, t.Tag), " "), err, strings.TrimSpace(string(out)))
		}
	}
	return first
}

// Sweep deletes every INPUT rule whose comment is exactly t.Tag, whoever added
// it (a crashed earlier run included), and returns how many it deleted.
func (t *IPTables) Sweep() (int, error) {
	out, err := t.Run("-w", "5", "-S", "INPUT")
	if err != nil {
		return 0, fmt.Errorf("failpoint: iptables -S INPUT: %v: %s", err, strings.TrimSpace(string(out)))
	}
	n := 0
	var first error
	for _, args := range SweepArgs(string(out), t.Tag) {
		if out, err := t.Run(args...); err != nil {
			if first == nil {
				first = fmt.Errorf("failpoint: iptables %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
			}
			continue
		}
		n++
	}
	return n, first
}

// SweepArgs turns the output of `iptables -S INPUT` into the argv that delete
// each rule commented exactly tag.
func SweepArgs(listing, tag string) [][]string {
	var cmds [][]string
	for _, line := range strings.Split(listing, "\n") {
		f := strings.Fields(strings.TrimSpace(line))
		if len(f) < 2 || f[0] != "-A" || f[1] != "INPUT" {
			continue
		}
		tagged := false
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "--comment" && strings.Trim(f[i+1], `"`) == tag {
				tagged = true
			}
		}
		if !tagged {
			continue
		}
		f[0] = "-D"
		cmds = append(cmds, append([]string{"-w", "5"}, f...))
	}
	return cmds
}
