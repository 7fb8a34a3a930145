//go:build cgo

package owners

// linksCgo: with cgo on, the collector's test binary links runtime/cgo
// (through net), as every `go test -race` build does.
const linksCgo = true
