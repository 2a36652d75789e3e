// Command etcd is etcd's own server (go.etcd.io/etcd/server/v3/etcdmain), built
// from its Go module at the version pinned in this module's go.mod, so that the
// anchor harness runs the same etcd on every machine without a prebuilt binary.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
