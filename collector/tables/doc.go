// Package tables is the first stage of a reading: it lists the kernel's TCP
// sockets, one Socket at a time, from /proc/net/tcp and tcp6 (ProcfsTables)
// or sock_diag (NetlinkTables), in the exporter's network namespace or in
// every namespace that has processes (NamespaceTables). A TableSource keeps
// no socket: the reader downstream counts each one as it streams past. The
// package also holds what the sources share: the TCP states, the cgroup
// parser that names a namespace's pod, and a synthetic host for benchmarks.
package tables
