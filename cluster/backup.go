package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/barberpro/edge/storage/durable"
)

// backupSuffix ends the names of scheduled backup files:
// <jurisdiction>-<UTC time 20060102T150405Z>-<applied index>-<node id>.bpbackup
// (the node id last: nodes sharing a dir never write the same name, and names
// still sort by time).
const backupSuffix = ".bpbackup"

// takingPrefix starts the name of the file a node writes a backup into
// before it knows the backup's name: .taking-<node id>.bpbackup.
const takingPrefix = ".taking"

// backupLoop writes a backup of the node's group into Config.BackupDir while
// this node leads the group (followers write none, so a jurisdiction's nodes
// do not write the same backup N times): at once when it leads and has not
// written one yet in this process (a new leader, a fresh start), then every
// BackupEvery. It removes the oldest of its files beyond BackupKeep. The
// metric barberpro_backup_last_success_timestamp_seconds says when it last
// succeeded.
func (n *Node) backupLoop(ctx context.Context) {
	if n.cfg.BackupDir == "" || n.cfg.BackupEvery <= 0 {
		return
	}
	t := time.NewTicker(min(n.cfg.BackupEvery, 10*time.Second))
	defer t.Stop()
	log := n.log.With("component", "backup")
	if err := removeStaleTaking(n.cfg.BackupDir, n.cfg.ID, time.Now()); err != nil {
		log.Warn("removing what a crashed backup left", "dir", n.cfg.BackupDir, "err", err)
	}
	var last time.Time // last attempt
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !n.store.IsLeader() || (!last.IsZero() && time.Since(last) < n.cfg.BackupEvery) {
			continue
		}
		last = time.Now()
		if err := n.backupOnce(ctx); err != nil {
			log.Error("scheduled backup failed", "dir", n.cfg.BackupDir, "err", err)
		}
	}
}

// backupOnce writes one backup file into BackupDir and prunes old ones.
func (n *Node) backupOnce(ctx context.Context) error {
	jur := n.city.Jurisdiction
	if err := os.MkdirAll(n.cfg.BackupDir, 0o700); err != nil {
		return err
	}
	start := time.Now()
	tmp := takingPath(n.cfg.BackupDir, n.cfg.ID)
	h, err := n.store.BackupToFile(ctx, tmp)
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	name := fmt.Sprintf("%s-%s-%012d-%s%s", jur, h.TakenAt.UTC().Format("20060102T150405Z"), h.AppliedIndex, n.cfg.ID, backupSuffix)
	path := filepath.Join(n.cfg.BackupDir, name)
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := durable.SyncDir(n.cfg.BackupDir); err != nil {
		return err
	}
	n.backupLast.Store(h.TakenAt.Unix())
	fi, _ := os.Stat(path)
	var size int64
	if fi != nil {
		size = fi.Size()
	}
	n.log.Info("scheduled backup written", "component", "backup", "file", path, "bytes", size,
		"applied_index", h.AppliedIndex, "cluster_id", h.ClusterID, "took", time.Since(start).Round(time.Millisecond))
	return pruneBackups(n.cfg.BackupDir, jur, n.cfg.BackupKeep)
}

// takingPath is the file node writes a backup into before naming it.
func takingPath(dir, node string) string {
	return filepath.Join(dir, takingPrefix+"-"+node+backupSuffix)
}

// staleTakingAge is how old a .taking.bpbackup of an earlier release (no node
// id in the name) must be before any node removes it: another node sharing
// the dir may be writing it.
const staleTakingAge = time.Hour

// removeStaleTaking removes what a backup of node that crashed left in dir:
// its .taking file and the temporary files beside it (node writes one
// backup at a time, and backupLoop calls this before its first), and those
// of an earlier release older than staleTakingAge.
func removeStaleTaking(dir, node string, now time.Time) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	own := filepath.Base(takingPath(dir, node))
	legacy := takingPrefix + backupSuffix
	var errs []error
	for _, e := range entries {
		name := e.Name()
		stale := name == own || strings.HasPrefix(name, own+".tmp-")
		if !stale && (name == legacy || strings.HasPrefix(name, legacy+".tmp-")) {
			if fi, err := e.Info(); err == nil && now.Sub(fi.ModTime()) > staleTakingAge {
				stale = true
			}
		}
		if stale {
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !os.IsNotExist(err) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// pruneBackups removes the oldest backup files of jurisdiction jur in dir
// beyond keep (names sort by time), whichever node wrote them: leadership
// moves, and the newest keep of the jurisdiction are what matters.
func pruneBackups(dir, jur string, keep int) error {
	if keep <= 0 {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var mine []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasPrefix(e.Name(), jur+"-") && strings.HasSuffix(e.Name(), backupSuffix) {
			mine = append(mine, e.Name())
		}
	}
	slices.Sort(mine)
	for len(mine) > keep {
		if err := os.Remove(filepath.Join(dir, mine[0])); err != nil {
			return err
		}
		mine = mine[1:]
	}
	return nil
}
