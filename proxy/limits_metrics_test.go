package proxy

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/siobridge/siobridge/engineio"
)

func TestLimitHits(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, nil)
	// Every limit's series is there from the start, at 0.
	if n := testutil.CollectAndCount(m.limitHits); n != len(LimitNames) {
		t.Errorf("%d series, want one per limit (%d)", n, len(LimitNames))
	}
	m.LimitHit(engineio.LimitSendQueue)
	m.LimitHit(engineio.LimitSendQueue)
	if v := testutil.ToFloat64(m.limitHits.WithLabelValues("max_queued_messages")); v != 2 {
		t.Errorf("siobridge_limit_hits_total{limit=max_queued_messages} = %v, want 2", v)
	}
	var none *Metrics
	none.LimitHit(engineio.LimitSessions) // a nil *Metrics records nothing
}
