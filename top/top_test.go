package top

import "testing"

func TestFormatPids(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		pids []int
		want string
	}{
		{nil, "-"},
		{[]int{7}, "7"},
		{[]int{1, 2, 3, 4}, "1,2,3,4"}, // no "+1" standing for one pid
		{[]int{1, 2, 3, 4, 5}, "1,2,3,+2"},
	} {
		if got := formatPids(c.pids); got != c.want {
			t.Errorf("formatPids(%v) = %q, want %q", c.pids, got, c.want)
		}
	}
}
