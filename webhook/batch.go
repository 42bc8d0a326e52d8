package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Batches (DelivererOptions.BatchMax > 1). A worker that takes a ready key whose next
// delivery is an event opens a batch: it takes that key's events at the head of its queue,
// then those of the other ready keys, and while the batch is not full it waits up to
// BatchWait, during which the other workers add the keys that become ready to it. A key in
// a batch is held by it as a key is held by a worker for a single delivery: it is not
// ready, so its later deliveries wait, and it goes back to the ready queue once the batch
// is settled. So each key has at most one batch in flight, its events are in order within a
// batch and from one batch to the next, and a key is held up only by its own batch, never
// by another key's. Connect and disconnect deliveries are sent alone, as without batches; a
// key whose next delivery is one of them is not taken into a batch.

// batchType is the HeaderType value of a batch.
var batchType = []string{"batch"}

// batch is a set of event deliveries sent as one POST.
type batch struct {
	max   int
	items []queued
	keys  []*keyQueue
	full  chan struct{} // closed when items reaches max
}

func (b *batch) isFull() bool { return len(b.items) >= b.max }

// take moves kq's events at the head of its queue into b, as many as b has room for, and
// holds kq. Called with the deliverer's lock held.
func (b *batch) take(kq *keyQueue) {
	for kq.waiting.len() > 0 && !b.isFull() && kq.waiting.peek().dl.Kind == KindEvent {
		q := kq.waiting.pop()
		kq.bytes -= len(q.dl.Body)
		b.items = append(b.items, q)
	}
	b.keys = append(b.keys, kq)
	kq.batch = b
	if b.isFull() {
		close(b.full)
	}
}

// joinForming adds q, just enqueued on kq, to the batch being filled that holds kq, when it
// can go there: it is an event, nothing of kq waits before it and the batch has room. So a
// client's burst goes in one batch. Called with the deliverer's lock held.
func (d *Deliverer) joinForming(kq *keyQueue, q queued) bool {
	b := kq.batch
	if b == nil || b != d.forming || b.isFull() || kq.waiting.len() > 0 || q.dl.Kind != KindEvent {
		return false
	}
	b.items = append(b.items, q)
	if b.isFull() {
		close(b.full)
	}
	return true
}

// fill takes into b the ready keys whose next delivery is an event, until b is full. Keys
// whose next delivery is not an event stay ready. Called with the deliverer's lock held.
func (d *Deliverer) fill(b *batch) {
	var others []*keyQueue
	for d.ready.len() > 0 && !b.isFull() {
		kq := d.ready.pop()
		if kq.waiting.peek().dl.Kind != KindEvent {
			others = append(others, kq)
			continue
		}
		b.take(kq)
	}
	for _, kq := range others {
		d.ready.push(kq)
		d.cond.Signal()
	}
}

// deliverBatch forms a batch from kq, held by this worker, and the keys ready now or within
// BatchWait, sends it and settles each of its deliveries in order. Called with the
// deliverer's lock held, which it holds again when it returns.
func (w *worker) deliverBatch(kq *keyQueue) {
	d := w.d
	b := &batch{max: d.opts.BatchMax, full: make(chan struct{})}
	b.take(kq)
	d.fill(b)
	if !b.isFull() && d.opts.BatchWait > 0 && !d.closed {
		d.forming = b
		d.mu.Unlock()
		t := time.NewTimer(d.opts.BatchWait)
		select {
		case <-b.full:
		case <-t.C:
		case <-d.closing:
		}
		t.Stop()
		d.mu.Lock()
		if d.forming == b {
			d.forming = nil
		}
		d.fill(b)
	}
	d.mu.Unlock()

	durable := false
	size := 1
	for _, q := range b.items {
		size += len(q.dl.Body) + 1
		durable = durable || q.seq != 0
	}
	body := make([]byte, 0, size)
	body = append(body, '[')
	for i, q := range b.items {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, q.dl.Body...)
	}
	body = append(body, ']')
	dl := &Delivery{ID: NewDeliveryID(), Kind: KindEvent, Body: body}
	res, cancelled := w.send(dl, durable, len(b.items))

	var bodies [][]byte
	var replyErr error
	if res.Err == nil && res.StatusCode >= 200 && res.StatusCode <= 299 {
		bodies, replyErr = splitBatchReply(res.Body, len(b.items))
	}
	for i, q := range b.items {
		r := res
		r.Delivery, r.Batch, r.ReplyErr = q.dl, dl.ID, replyErr
		switch {
		case replyErr != nil:
			r.Body = nil
		case bodies != nil:
			r.Body = bodies[i]
		}
		if q.seq != 0 {
			if cancelled {
				r.Kept = true
			} else {
				d.spool.MarkDone(q.seq)
			}
		}
		d.settled(&r)
		if q.done != nil {
			q.done(r)
		}
	}

	d.mu.Lock()
	n := len(b.items)
	d.pending -= n
	if cancelled {
		d.cancelled += n
		for _, q := range b.items {
			if q.seq != 0 {
				d.kept++
			}
		}
	}
	for _, kq := range b.keys {
		kq.batch = nil
		if kq.waiting.len() > 0 {
			d.ready.push(kq)
			d.cond.Signal()
		} else {
			delete(d.keys, kq.key)
		}
	}
	if d.closed && d.pending == 0 {
		d.cond.Broadcast()
	}
	d.metrics.addPending(-n)
}

// splitBatchReply splits the 2xx reply to a batch of n events into the reply to each: a
// JSON array of n values, the i-th for the i-th event; anything else (an object, an empty
// body, text) is the reply to every one of them. err says why an array, or what looks like
// JSON, cannot be split.
func splitBatchReply(body []byte, n int) ([][]byte, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '[' {
		bodies := make([][]byte, n)
		for i := range bodies {
			bodies[i] = body
		}
		return bodies, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(trimmed, &items); err != nil {
		return nil, fmt.Errorf("the batch's reply is not valid JSON: %s", jsonErrorText(err))
	}
	if len(items) != n {
		return nil, fmt.Errorf("the batch's reply is an array of %d values for %d events: it must have one per event, in order, or be one object for all", len(items), n)
	}
	bodies := make([][]byte, n)
	for i, it := range items {
		bodies[i] = it
	}
	return bodies, nil
}
