// Package cluster wires one BarberPro node together: it opens the node's replicated
// store (storage), starts its calendar actors (actors) on top of it, and serves the
// HTTP API (edge) over both. cmd/barberpro calls it; it is the only package that
// imports all three, so imports keep flowing one way: edge → actors → storage, with
// cluster above them.
package cluster
