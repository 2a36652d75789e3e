package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/barberpro/edge/storage/durable"

	"github.com/spf13/cobra"

	"github.com/barberpro/edge/edge/client"
	"github.com/barberpro/edge/storage"
	"github.com/barberpro/edge/topology"
)

func newBackupCmd() *cobra.Command {
	var (
		addr, token, jurisdiction, out, ca string
		timeout                            time.Duration
	)
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Take a consistent backup of a jurisdiction's store from one of its nodes",
		Long: `Take a consistent backup of a jurisdiction's store: the node at --addr (a node
of that jurisdiction; any other answers 403 residency_violation, a backup is never
relayed) streams one read transaction of its store after a linearizable read, with
a header (cluster id, jurisdiction, Raft applied index, time) and a SHA-256
trailer. The checksum is verified before the file is renamed into place (written
atomically: OUT.tmp-*, fsync, rename).`,
		Example: `  barberpro backup --addr http://127.0.0.11:8080 --jurisdiction ar --out ar.bpbackup --token "$BARBERPRO_TOKEN"
  barberpro backup --addr https://10.0.0.11:8443 --ca ca/ca.crt --jurisdiction ar --out ar.bpbackup --token "$BARBERPRO_TOKEN"`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if token == "" {
				return usagef("--token is required: backups need an operator token (barberpro token issue --role operator)")
			}
			if jurisdiction == "" || out == "" {
				return usagef("--jurisdiction and --out are required")
			}
			u, err := url.Parse(addr)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return usagef("--addr %q is not a node's API URL: give one like http://127.0.0.11:8080", addr)
			}
			hc, err := nodeHTTPClient(ca, timeout)
			if err != nil {
				return err
			}
			start := time.Now()
			h, size, err := fetchBackup(cmd, hc, addr, token, jurisdiction, out)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "backup of %s written to %s: %d bytes, cluster id %s, applied index %d, taken %s by %s in %s\n",
				h.Jurisdiction, out, size, h.ClusterID, h.AppliedIndex, h.TakenAt.Format(time.RFC3339), h.Node, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&addr, "addr", "http://127.0.0.11:8080", "API URL of a node of the jurisdiction")
	fl.StringVar(&token, "token", "", "an operator's bearer token (barberpro token issue --role operator)")
	fl.StringVar(&jurisdiction, "jurisdiction", "", "the jurisdiction to back up, e.g. ar (required)")
	fl.StringVar(&out, "out", "", "file to write (required)")
	fl.DurationVar(&timeout, "timeout", 30*time.Minute, "how long the whole transfer may take")
	addCAFlag(fl, &ca)
	return cmd
}

// fetchBackup downloads the backup into a temporary file beside out, checks
// it (format, length, SHA-256) while it streams, fsyncs and renames it to out.
func fetchBackup(cmd *cobra.Command, hc *http.Client, addr, token, jurisdiction, out string) (storage.BackupHeader, int64, error) {
	var h storage.BackupHeader
	req, err := http.NewRequestWithContext(cmd.Context(), http.MethodGet,
		addr+"/v1/cluster/backup?jurisdiction="+url.QueryEscape(jurisdiction), nil)
	if err != nil {
		return h, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return h, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		p := &client.Problem{Status: resp.StatusCode}
		if json.Unmarshal(b, p) != nil || p.Detail == "" {
			return h, 0, fmt.Errorf("backup: %s answered %s: %s", addr, resp.Status, b)
		}
		return h, 0, p
	}
	err = durable.WriteFile(out, 0o600, func(w io.Writer) error {
		var err error
		if h, err = storage.CopyBackup(w, bufio.NewReaderSize(resp.Body, 1<<20)); err != nil {
			return fmt.Errorf("backup: the stream from %s is not a complete backup: %w", addr, err)
		}
		if h.Jurisdiction != jurisdiction {
			return fmt.Errorf("backup: %s sent a backup of %q, not %q", addr, h.Jurisdiction, jurisdiction)
		}
		return nil
	})
	if err != nil {
		return h, 0, err
	}
	fi, err := os.Stat(out)
	if err != nil {
		return h, 0, err
	}
	return h, fi.Size(), nil
}

func newRestoreCmd() *cobra.Command {
	var (
		from, dataDir, id, city, topologyFile, kekFile string
		allowOldLedger                                 bool
	)
	cmd := &cobra.Command{
		Use:   "restore",
		Short: "Seed an empty data dir from a backup: the node started on it founds a NEW group",
		Long: `Seed an empty data dir from a backup file (barberpro backup, or a scheduled one
from node start --backup-dir), in one pass over the file: a backup of another
jurisdiction than --city's is refused before its body is read, the checksum is
verified while the body is written. The data dir then holds the backup's records
with the Raft applied index reset, a NEW cluster id, and a restored.json marker:
` + "`node start`" + ` on it (same --id, --city, --data-dir) bootstraps a single-voter Raft group
of that node at once (no founding wait, whatever --bootstrap-expect says). From
its first start the node refuses Raft connections from servers of any other group
— the group the backup came from included — and refuses to start in another
jurisdiction. Start the other nodes of the jurisdiction with EMPTY data dirs and
--join: they join it as new servers.

A backup holding wrapped client keys (psychology) needs --kek-file:
the key-encryption key's erasure ledger (FILE.erasures) names the clients erased
AFTER the backup was taken, whose keys in the backup it keeps from ever being
unwrapped again. The ledger must exist (it is never made here), the KEK must be
the one that wrapped the backup's keys, and the ledger must have changed after
the backup was taken: an older one may be a stale copy that lacks recent
erasures. --allow-old-ledger accepts it when you know no client was erased since.
The restore is built in DIR/.restore-tmp and moved into place at the end: a
failure leaves the data dir as it was. Erasures the backup holds are replayed
into the ledger and shredded from the restored files at start.`,
		Example: `  barberpro restore --from ar.bpbackup --data-dir ./data/ba-1 --id ba-1 --city buenos-aires --kek-file /etc/barberpro/ar.kek
  barberpro node start --id ba-1 --city buenos-aires --data-dir ./data/ba-1 --kek-file /etc/barberpro/ar.kek ...`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" || dataDir == "" || id == "" || city == "" {
				return usagef("--from, --data-dir, --id and --city are required")
			}
			top, err := topology.Load(topologyFile)
			if err != nil {
				return usageError{err}
			}
			c, err := top.City(city)
			if err != nil {
				return usageError{err}
			}
			start := time.Now()
			h, err := storage.RestoreBackup(from, dataDir, storage.RestoreOptions{
				Jurisdiction: c.Jurisdiction, KEKFile: kekFile, AllowOldLedger: allowOldLedger,
			})
			switch {
			case errors.Is(err, storage.ErrKEKRequired) && kekFile == "":
				return fmt.Errorf("restore: %w: give --kek-file (the jurisdiction's key-encryption key, with its erasure ledger FILE.erasures beside it)", err)
			case errors.Is(err, storage.ErrLedgerOutdated):
				return fmt.Errorf("restore: %w (--allow-old-ledger if you know no client was erased since)", err)
			case errors.Is(err, storage.ErrWrongJurisdiction):
				return fmt.Errorf("restore: %w (%s is in %s)", err, id, city)
			case err != nil && errors.Is(err, storage.ErrBadBackup):
				return err
			case err != nil:
				return fmt.Errorf("restore: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored %s (cluster id %s, applied index %d, taken %s) into %s in %s\n",
				from, h.ClusterID, h.AppliedIndex, h.TakenAt.Format(time.RFC3339), dataDir, time.Since(start).Round(time.Millisecond))
			if h.ClientKeys > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "%d wrapped client keys, %d of them erased after the backup (the ledger keeps them unusable); %d erasures in the backup\n",
					h.ClientKeys, h.ErasedKeys, h.Erasures)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "start %s on it: it founds a new %s group, cluster id %s; start the other %s nodes with empty data dirs and --join\n",
				id, h.Jurisdiction, h.NewClusterID, h.Jurisdiction)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&from, "from", "", "backup file (required)")
	fl.StringVar(&dataDir, "data-dir", "", "the node's data dir: must be empty or absent (required)")
	fl.StringVar(&id, "id", "", "id of the node that will start on it (required)")
	fl.StringVar(&city, "city", "", "city of that node; its jurisdiction must be the backup's (required)")
	fl.StringVar(&topologyFile, "topology", "", "topology YAML file (cities, verticals); default the embedded one")
	fl.StringVar(&kekFile, "kek-file", "", "the jurisdiction's key-encryption key `FILE` (its erasure ledger FILE.erasures must exist): required when the backup holds wrapped client keys")
	fl.BoolVar(&allowOldLedger, "allow-old-ledger", false, "accept an erasure ledger last changed before the backup was taken (no client was erased since)")
	return cmd
}
