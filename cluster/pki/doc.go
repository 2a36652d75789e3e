// Package pki makes and loads the certificates nodes use to prove who they are to each
// other: a cluster CA (ECDSA P-256), and per node a certificate whose URI SAN names the
// node — barberpro://node/<jurisdiction>/<city>/<node-id> — and whose IP SANs name the
// addresses it listens on.
//
// Every node-to-node channel (Raft, actor remote, HTTP relays) is mutual TLS 1.3
// against the cluster CA: ServerTLS and ClientTLS build those configurations, and each
// takes an allow check that decides, from the peer certificate's Identity alone, whether
// the peer may use the channel (for Raft: same jurisdiction). Gossip metadata never
// decides; the certificate does.
//
// On disk a node's directory holds ca.crt, node.crt and node.key (0600); a CA directory
// holds ca.crt and ca.key (0600). ca.crt may hold several certificates (a bundle), so a
// new CA can be trusted next to the old one while certificates are reissued.
package pki
