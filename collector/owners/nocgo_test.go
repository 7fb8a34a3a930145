//go:build !cgo

package owners

// linksCgo: built with CGO_ENABLED=0, as the packages and the image are.
const linksCgo = false
