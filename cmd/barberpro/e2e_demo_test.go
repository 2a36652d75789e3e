package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Test_Demo_PrintedLinesWorkAsPrinted is issue 8's "prints curl lines that work
// as printed": it runs `barberpro demo` (what `make run` runs), then every line
// it prints, in order and in one shell (the lines keep $BOOKING and $SESSION
// for the next ones), with no barberpro on the PATH. Each line must exit 0 and
// answer no 5xx; a line shown with -i must answer every status its comment
// promises; a line without -i no problem body; the availability line lists the
// slot Ana books. Then Ctrl-C stops every node. The bench line runs shortened
// (20 users, 2 s): it checks the printed flags, not the load.
func Test_Demo_PrintedLinesWorkAsPrinted(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "grep", "cut", "head"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the demo's lines need %s: %v", tool, err)
		}
	}
	const ipBase = 236 // 236-240: no other test uses them (the short sim uses 241-245)
	cmd := exec.Command(binary, "demo", "--ip-base", fmt.Sprint(ipBase))
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
			}
		}
	})

	// The printed lines: "# what" then the command, up to "Ctrl-C stops the demo."
	type line struct{ what, cmd string }
	var lines []line
	printed := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		var what string
		done := false
		for sc.Scan() {
			l := sc.Text()
			switch {
			case done:
			case l == "Ctrl-C stops the demo.":
				done = true
				printed <- nil
			case strings.HasPrefix(l, "# "):
				what = strings.TrimPrefix(l, "# ")
			case what != "" && strings.TrimSpace(l) != "":
				lines = append(lines, line{what, l})
				what = ""
			}
		}
		if !done {
			printed <- fmt.Errorf("the demo's output ended before its last line: %v", sc.Err())
		}
		exited <- cmd.Wait()
	}()
	select {
	case err := <-printed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Minute):
		t.Fatal("the demo printed no lines within 3 minutes")
	}
	if len(lines) < 20 {
		t.Fatalf("the demo printed %d lines", len(lines))
	}

	// One shell for all lines, each framed by markers with its exit status.
	var script strings.Builder
	for i, l := range lines {
		c := l.cmd
		if strings.Contains(c, " bench --target ") {
			c = regexp.MustCompile(`--users \d+ --duration \S+`).ReplaceAllString(c, "--users 20 --duration 2s")
		}
		fmt.Fprintf(&script, "echo '@@@ %d'\n%s\nrc=$?; echo; echo \"@@@ rc=$rc\"\n", i, c)
	}
	sh := exec.Command("bash", "-c", script.String())
	sh.Env = append(withoutBarberproOnPath(t), "LC_ALL=C")
	out, err := sh.CombinedOutput()
	if err != nil {
		t.Fatalf("the lines' shell: %v\n%s", err, out)
	}
	parts := regexp.MustCompile(`(?m)^@@@ (\d+)\n`).Split(string(out), -1)[1:]
	if len(parts) != len(lines) {
		t.Fatalf("%d outputs for %d lines:\n%s", len(parts), len(lines), out)
	}
	statusRe := regexp.MustCompile(`(?m)^HTTP/1\.1 (\d{3}) `)
	promisedRe := regexp.MustCompile(`\b[2-5]\d\d\b`)
	slotRe := regexp.MustCompile(`"start":"([^"]+)"`)
	var anaSlot, availability string
	for i, l := range lines {
		got := parts[i]
		rc := regexp.MustCompile(`(?m)^@@@ rc=(\d+)$`).FindStringSubmatch(got)
		if rc == nil || rc[1] != "0" {
			t.Errorf("%s\n%s\nexit status %v:\n%s", l.what, l.cmd, rc, got)
			continue
		}
		var statuses []string
		for _, m := range statusRe.FindAllStringSubmatch(got, -1) {
			statuses = append(statuses, m[1])
			if m[1][0] == '5' {
				t.Errorf("%s: answered %s:\n%s", l.what, m[1], got)
			}
		}
		if strings.Contains(l.cmd, "curl -s -i ") {
			for _, want := range promisedRe.FindAllString(l.what, -1) {
				if !strings.Contains(" "+strings.Join(statuses, " ")+" ", " "+want+" ") {
					t.Errorf("%s\n%s\nanswered %v, not %s:\n%s", l.what, l.cmd, statuses, want, got)
				}
			}
		} else if strings.Contains(l.cmd, "curl ") && !strings.Contains(l.cmd, "/openapi.json") && // the contract's examples hold problems
			strings.Contains(got, `"type":"urn:barberpro:problem:`) {
			t.Errorf("%s\n%s\nanswered a problem:\n%s", l.what, l.cmd, got)
		}
		if strings.Contains(l.cmd, "BOOKING=") || strings.Contains(l.cmd, "SESSION=") {
			if !strings.HasPrefix(got, "bkg_") {
				t.Errorf("%s: no booking id kept:\n%s", l.what, got)
			}
		}
		switch {
		case strings.HasPrefix(l.what, "Availability of "):
			availability = got
		case strings.HasPrefix(l.what, "Ana books the first free slot"):
			if m := slotRe.FindStringSubmatch(l.cmd); m != nil {
				anaSlot = m[1]
			}
		}
	}
	if anaSlot == "" || !strings.Contains(availability, `"start":"`+anaSlot+`"`) {
		t.Errorf("the availability line does not show the slot Ana books (%q):\n%s", anaSlot, availability)
	}

	// Ctrl-C: the demo stops every node and exits.
	cmd.Process.Signal(syscall.SIGINT)
	stopped = true
	select {
	case <-exited:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the demo did not stop within 60 s of Ctrl-C")
	}
	for i := 0; i < 5; i++ {
		addr := fmt.Sprintf("127.0.0.%d:8080", ipBase+i)
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("a node still listens on %s after the demo stopped", addr)
		}
	}
}

// withoutBarberproOnPath is the environment with every PATH entry that holds a
// barberpro dropped, so lines that work only with one installed fail.
func withoutBarberproOnPath(t *testing.T) []string {
	t.Helper()
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PATH=") {
			var keep []string
			for _, dir := range strings.Split(strings.TrimPrefix(kv, "PATH="), ":") {
				if _, err := os.Stat(dir + "/barberpro"); err != nil {
					keep = append(keep, dir)
				}
			}
			kv = "PATH=" + strings.Join(keep, ":")
		}
		env = append(env, kv)
	}
	return env
}
