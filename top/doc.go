// Package top is `tcpstate_exporter top`: the routes, pools and dead
// sockets of one reading printed as a table or JSON for an engineer at the
// host, once or with --watch. main parses its flags and hands it an
// Exporter to read from.
package top
