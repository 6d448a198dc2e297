//go:build !(linux && cgo)

package malloc

// LimitArenas does nothing without glibc.
func LimitArenas(int) bool { return false }
