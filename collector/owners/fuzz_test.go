package owners

import (
	"fmt"
	"strings"
	"testing"
)

func FuzzParseSocketLink(f *testing.F) {
	for _, seed := range []string{"socket:[12345]", "socket:[]", "socket:[0]", "pipe:[777]", "/dev/null", "socket:[18446744073709551615]", "socket:[18446744073709551616]", "anon_inode:[eventpoll]", "socket:[-1]"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, link string) {
		ino, ok := parseSocketLink([]byte(link))
		if !ok {
			return
		}
		inner := strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")
		if !strings.HasPrefix(link, "socket:[") || !strings.HasSuffix(link, "]") || strings.TrimLeft(inner, "0") != strings.TrimLeft(fmt.Sprint(ino), "0") {
			t.Fatalf("%q parsed as inode %d", link, ino)
		}
	})
}
