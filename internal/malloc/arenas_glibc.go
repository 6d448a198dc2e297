//go:build linux && cgo

package malloc

/*
#include <malloc.h>

static int limit_arenas(int n) {
#ifdef M_ARENA_MAX
	return mallopt(M_ARENA_MAX, n);
#else
	return 0;
#endif
}
*/
import "C"

// LimitArenas caps the C allocator's arenas at n (glibc; elsewhere it does
// nothing). It reports whether the cap was applied. MALLOC_ARENA_MAX in the
// environment, when set, wins.
func LimitArenas(n int) bool {
	return C.limit_arenas(C.int(n)) == 1
}
