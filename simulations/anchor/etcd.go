package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// etcdIPBase is the loopback network of the etcd members: member i binds
// 127.0.4.(i+1), apart from the barberpro nodes and from the project's tests.
const etcdIPBase = "127.0.4."

// etcdReadyTimeout bounds the wait for a layout's members to serve reads.
const etcdReadyTimeout = 60 * time.Second

// etcdCluster is a running etcd layout: its members and their client URLs.
type etcdCluster struct {
	procs     []*proc
	endpoints []string
}

// startEtcd starts n etcd members of one cluster on loopback (plain HTTP, no auth,
// default fsync and snapshot settings), data dirs under dir, and waits until each
// serves a linearizable read.
func startEtcd(ctx context.Context, bin, dir string, n int) (*etcdCluster, error) {
	var initial []string
	for i := range n {
		initial = append(initial, fmt.Sprintf("m%d=http://%s%d:2380", i+1, etcdIPBase, i+1))
	}
	c := &etcdCluster{}
	for i := range n {
		name, ip := fmt.Sprintf("m%d", i+1), fmt.Sprintf("%s%d", etcdIPBase, i+1)
		client, peer := "http://"+ip+":2379", "http://"+ip+":2380"
		p, err := startProc(dir, "etcd-"+name, nil, bin,
			"--name", name,
			"--data-dir", filepath.Join(dir, "etcd-"+name),
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new", "--initial-cluster-token", "anchor",
			"--log-level", "warn")
		if err != nil {
			c.stop()
			return nil, err
		}
		c.procs = append(c.procs, p)
		c.endpoints = append(c.endpoints, client)
	}
	err := waitReady(ctx, c.procs, etcdReadyTimeout, func(i int) error {
		cli, err := newEtcdClient(c.endpoints[i])
		if err != nil {
			return err
		}
		defer cli.Close()
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err = cli.Get(rctx, "anchor/ready")
		return err
	})
	if err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// stop ends every member.
func (c *etcdCluster) stop() { stopAll(c.procs) }

// newEtcdClient is a client of one member, quiet.
func newEtcdClient(endpoint string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   []string{endpoint},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
}

// etcdVersion is the first line of `etcd --version`.
func etcdVersion(ctx context.Context, bin string) string {
	out, err := output(ctx, bin, "--version")
	if err != nil {
		return "unknown"
	}
	first, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(strings.TrimPrefix(first, "etcd Version:"))
}
