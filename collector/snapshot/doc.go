// Package snapshot joins the two sources of a reading: the walk of package
// owners first, then the tables streaming from package tables, each socket
// classified (inbound, outbound, listening), attributed to its process,
// aged (CloseWaitTracker) and handed to every view's Tally, none kept. What
// outlives a reading — CLOSE_WAIT ages, the routes of sockets that may end
// held after a reset — is remembered here; the metric families that read a
// Snapshot live in package collector.
package snapshot
