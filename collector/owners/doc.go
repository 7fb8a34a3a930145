// Package owners is the process side of a reading: the walk of
// /proc/PID/fd that tells which process holds each socket inode
// (SocketOwners), the capabilities that walk needs, and the sockets a
// process holds after the kernel dropped them from every table (found by
// asking each unlisted socket fd its protocol). It reads processes only;
// what the sockets are comes from package tables.
package owners
