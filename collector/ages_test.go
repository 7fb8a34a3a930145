package collector

import (
	"testing"
	"time"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/snapshot"
)

func TestCloseWaitAgeSummary(t *testing.T) {
	t.Parallel()
	var a closeWaitAge
	a.add(&snapshot.SockInfo{Age: 10 * time.Minute, AgeSource: snapshot.AgeFirstSeen}, 5*time.Minute)
	a.add(&snapshot.SockInfo{Age: time.Minute, AgeSource: snapshot.AgeKernel}, 5*time.Minute)
	a.add(&snapshot.SockInfo{}, 5*time.Minute) // untracked: counted, no age
	if a.count != 3 || a.stuck != 1 || a.oldest != 600 || !a.known {
		t.Fatalf("%+v", a)
	}
}
