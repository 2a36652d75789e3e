// Package deploy holds no code: it is the home of the files that run a
// BarberPro Edge node in production — Prometheus alert rules and their promtool
// tests (prometheus/), the Grafana dashboard (grafana/), the systemd unit
// (systemd/) — and of deploy_test.go, which checks them: promtool check and test
// rules, every metric name in a query against a real node's /metrics, and the
// unit's hardening. See README.md.
package deploy
