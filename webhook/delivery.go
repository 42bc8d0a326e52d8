package webhook

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	randv2 "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/siobridge/siobridge/internal/group"
	"github.com/siobridge/siobridge/internal/jsonw"
	"github.com/siobridge/siobridge/internal/spool"
)

// Kind is what a webhook reports.
type Kind string

// The kinds of webhook, sent in the X-Siobridge-Type header and the payload's "type".
const (
	// KindConnect asks the app whether a client may join a namespace.
	KindConnect Kind = "connect"
	// KindEvent reports an event a client emitted.
	KindEvent Kind = "event"
	// KindDisconnect reports that a socket left its namespace.
	KindDisconnect Kind = "disconnect"
)

// DelivererOptions configure a [Deliverer]. The zero value of each field means its default.
type DelivererOptions struct {
	// URL is the app's webhook endpoint, an absolute http or https URL. Any other value
	// makes every delivery fail at once with an error saying so.
	URL string
	// Secret is the HMAC-SHA256 key of the X-Siobridge-Signature header (see [Sign]).
	// Empty: requests are not signed.
	Secret string
	// Timeout bounds each attempt, from dialing to the end of the reply's body. Default 5s.
	Timeout time.Duration
	// RetryFor is how long an event or disconnect delivery may be retried: no retry begins
	// later than RetryFor after its first attempt. Default 2m; negative: no limit of time.
	RetryFor time.Duration
	// ConnectRetryFor is RetryFor for connect deliveries, which a client waits on. Default 5s;
	// negative: no limit of time.
	ConnectRetryFor time.Duration
	// MaxAttempts caps the attempts of a delivery, its first included: 1 means no retry.
	// Default 0: no cap, RetryFor alone bounds the retries.
	MaxAttempts int
	// RetryWaitMin is the wait before the first retry; later waits double, with jitter, up
	// to RetryWaitMax. Default 100ms.
	RetryWaitMin time.Duration
	// RetryWaitMax caps the wait between retries, except that a Retry-After header on a
	// 429 or 503 reply is honoured up to 60s. Default 5s; never less than RetryWaitMin.
	RetryWaitMax time.Duration
	// Concurrency is the number of deliveries in flight at once, across all keys: the
	// number of worker goroutines. Default 64.
	Concurrency int
	// QueueSize is the number of deliveries a key may have waiting behind the one in flight;
	// [Deliverer.Enqueue] returns [ErrQueueFull] past it. Default 1000.
	QueueSize int
	// QueueBytes bounds the body bytes of the deliveries a key has waiting behind the one in
	// flight: [Deliverer.Enqueue] returns [ErrQueueFull] for a delivery that would pass it,
	// unless the key has none waiting (so one larger than QueueBytes is still sent). Default
	// 4 MiB.
	QueueBytes int
	// UserAgent is the User-Agent header. Default "siobridge".
	UserAgent string
	// Logger receives the account of each attempt (the lines go-retryablehttp's client
	// wrote: "performing request", "request failed", "retrying request"), at debug level,
	// when debug is enabled at [NewDeliverer]. Default slog.Default().
	Logger *slog.Logger
	// Metrics records deliveries; nil records nothing.
	Metrics *Metrics
	// Spool, when not nil, makes event and disconnect deliveries durable: each is appended
	// to the spool before Enqueue returns, and marked done there once settled, so that what
	// a crash or a shutdown's deadline leaves undelivered is delivered by the next
	// Deliverer given the spool (its first deliveries, in their order, before any new
	// ones). Spooled deliveries are retried without limit (neither RetryFor nor MaxAttempts
	// applies), with waits capped at RetryWaitMax, until the app answers with a final reply
	// or Close. A
	// connect delivery is never spooled: its answer decides a connection that a restart
	// ends. The Deliverer does not close the spool.
	Spool *spool.Spool
	// BatchMax is the number of event deliveries one POST may carry. 1 or less (the
	// default): each event is a POST of its own. Above 1, event deliveries go as batches
	// (see [Deliverer.Enqueue] and batch.go): a JSON array of their bodies, formed from the
	// heads of the keys' queues, a key having at most one batch in flight. Connect and
	// disconnect deliveries are never batched.
	BatchMax int
	// BatchWait is how long a batch waits for more events once it holds its first, unless
	// it fills first; 0 sends it with what is ready at once. Used only when BatchMax > 1.
	BatchWait time.Duration
	// Transport sends the requests. Default: a keep-alive transport that keeps up to
	// Concurrency idle connections to the app, closed by [Deliverer.Close]. A Transport
	// given here is not closed.
	Transport http.RoundTripper
}

// Delivery is one webhook: its body is sent as is on every attempt.
type Delivery struct {
	// ID is sent in X-Siobridge-Delivery, the same on every attempt, so that the app can
	// recognise a delivery it has already handled. [Deliverer.Enqueue] sets a fresh random
	// one ([NewDeliveryID]) when it is empty. The [Bridge] chooses it first and writes it in
	// the body too, as [Payload].ID, where the signature covers it.
	ID string
	// Kind is sent in X-Siobridge-Type.
	Kind Kind
	// Body is the JSON body.
	Body []byte
}

// Result is how a delivery was settled.
type Result struct {
	// Delivery is the delivery settled.
	Delivery *Delivery
	// StatusCode is the last reply's HTTP status; 0 when no reply came.
	StatusCode int
	// Body is the last reply's body, at most 1 MiB: a longer one is not kept and Err is
	// [ErrReplyTooLarge].
	Body []byte
	// Attempts is the number of requests sent, 0 when the delivery was cancelled before its
	// first.
	Attempts int
	// Duration is the time from the first attempt to settlement, retry waits included.
	Duration time.Duration
	// Err is nil when a final answer came: any 2xx, or a 4xx other than 408 and 429 (the
	// app refused the delivery; retrying would not change its mind). Otherwise it says what
	// happened last: a connection error or timeout, a 408, 429 or 5xx still there when
	// RetryFor or MaxAttempts ran out, a 501 or 3xx (neither retried nor followed), a reply too large
	// ([ErrReplyTooLarge]), or [Deliverer.Close] cancelling the delivery (it wraps
	// [ErrClosed]). For example
	// "webhook: POST http://app/hook: 503 Service Unavailable after 6 attempts".
	Err error
	// Kept reports a delivery that Close cancelled and that stays in the spool, to be
	// delivered by the next Deliverer given the spool.
	Kept bool
	// Batch is the delivery id of the batch that carried this delivery (its
	// X-Siobridge-Delivery header), "" when it was sent alone. StatusCode, Attempts,
	// Duration, Err and Kept are the batch's; Body is this delivery's part of the reply.
	Batch string
	// ReplyErr says why a batch's 2xx reply could not be split into one reply per
	// delivery (it is not valid JSON, or an array of the wrong length): the app's answer
	// to this delivery is unknown, and Body is nil. Always nil for a delivery sent alone.
	ReplyErr error
}

// Errors of [Deliverer.Enqueue] and of [Result].Err.
var (
	// ErrQueueFull is returned by [Deliverer.Enqueue] for a key that already has
	// QueueSize deliveries, or QueueBytes of bodies, waiting.
	ErrQueueFull = errors.New("webhook: delivery queue full")
	// ErrClosed is returned by [Deliverer.Enqueue] once [Deliverer.Close] has been called,
	// and wrapped by the Result.Err of the deliveries Close cancelled.
	ErrClosed = errors.New("webhook: deliverer closed")
	// ErrReplyTooLarge is wrapped by Result.Err when the reply's body exceeds 1 MiB.
	ErrReplyTooLarge = errors.New("webhook: reply body larger than 1 MiB")
)

const (
	maxReplySize = 1 << 20
	// maxRetryAfter caps the wait a Retry-After header may impose: a key's later deliveries
	// wait behind it.
	maxRetryAfter = 60 * time.Second
)

// Deliverer POSTs webhooks to the app, retrying those that fail, one at a time per key
// (a socket) and in parallel across keys. Its methods are safe for concurrent use.
// [Deliverer.Close] must be called to stop its workers.
type Deliverer struct {
	opts      DelivererOptions
	url       string
	shownURL  string // url without its password, for errors
	urlErr    error
	rt        http.RoundTripper // sends every attempt
	target    *http.Request     // the URL and Host of every request, as http.NewRequest makes them; nil with urlErr
	errURL    string            // the URL in the errors of attempts, as net/http's client shows it (password as ***)
	auth      []string          // the Authorization header of a URL with a user, as net/http's client sets it; nil without
	spool     *spool.Spool
	transport *http.Transport // the default transport, which Close cleans up; nil when given
	metrics   *Metrics
	userAgent []string // the User-Agent header's value, shared by every request
	signer    *signer  // nil without a secret

	// ctx is the parent of every request's context; Close cancels it with ErrClosed.
	ctx     context.Context
	cancel  context.CancelCauseFunc
	workers group.Group

	mu   sync.Mutex
	cond sync.Cond // on mu: a key became ready, or closing ran out of work
	// keys holds the keys with a delivery waiting or in flight. Each is either in ready
	// (deliveries waiting, no worker holds it) or held by one worker.
	keys      map[string]*keyQueue
	ready     fifo[*keyQueue]
	forming   *batch        // the batch a worker is filling, waiting for BatchWait; nil when none
	closing   chan struct{} // closed by Close: a batch being filled goes at once
	pending   int           // deliveries queued or in flight
	closed    bool
	cancelled int // deliveries Close cancelled
	kept      int // of those, the ones left in the spool

	delivered, refused, givenUp atomic.Int64 // see Settled
}

type keyQueue struct {
	key     string
	waiting fifo[queued]
	bytes   int    // body bytes of waiting
	batch   *batch // the batch that holds the key, if any
}

type queued struct {
	dl   *Delivery
	done func(Result)
	seq  uint64 // its sequence number in the spool; 0 when not spooled
}

// NewDeliverer starts opts.Concurrency workers that deliver what [Deliverer.Enqueue]
// queues, until [Deliverer.Close].
func NewDeliverer(opts DelivererOptions) *Deliverer {
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.RetryFor == 0 {
		opts.RetryFor = 2 * time.Minute
	}
	if opts.ConnectRetryFor == 0 {
		opts.ConnectRetryFor = 5 * time.Second
	}
	opts.MaxAttempts = max(opts.MaxAttempts, 0)
	if opts.RetryWaitMin <= 0 {
		opts.RetryWaitMin = 100 * time.Millisecond
	}
	if opts.RetryWaitMax <= 0 {
		opts.RetryWaitMax = 5 * time.Second
	}
	opts.RetryWaitMax = max(opts.RetryWaitMax, opts.RetryWaitMin)
	if opts.Concurrency <= 0 {
		opts.Concurrency = 64
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 1000
	}
	if opts.QueueBytes <= 0 {
		opts.QueueBytes = 4 << 20
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "siobridge"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}

	d := &Deliverer{opts: opts, url: opts.URL, shownURL: opts.URL, metrics: opts.Metrics, keys: make(map[string]*keyQueue), spool: opts.Spool,
		userAgent: []string{opts.UserAgent}}
	if opts.Secret != "" {
		d.signer = newSigner(opts.Secret)
	}
	d.cond.L = &d.mu
	d.closing = make(chan struct{})
	d.ctx, d.cancel = context.WithCancelCause(context.Background())
	if u, err := url.Parse(opts.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		d.urlErr = fmt.Errorf("webhook: URL must be an absolute http(s) URL, got %q", opts.URL)
	} else if d.target, err = http.NewRequest(http.MethodPost, opts.URL, nil); err != nil {
		d.urlErr = fmt.Errorf("webhook: URL %q: %w", opts.URL, err)
	} else {
		d.shownURL = u.Redacted()
		d.errURL = stripPassword(d.target.URL)
		if ui := d.target.URL.User; ui != nil {
			pw, _ := ui.Password()
			d.auth = []string{"Basic " + base64.StdEncoding.EncodeToString([]byte(ui.Username()+":"+pw))}
		}
	}

	rt := opts.Transport
	if rt == nil {
		d.transport = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          opts.Concurrency,
			MaxIdleConnsPerHost:   opts.Concurrency,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		}
		rt = d.transport
	}
	// The workers call the transport themselves (attempt.go), as an http.Client with
	// Timeout would, but without its redirects: a redirected POST would reach another
	// endpoint as a GET without the webhook, so a 3xx is reported as it is.
	d.rt = rt
	if d.spool != nil {
		d.replay()
	}

	for range opts.Concurrency {
		d.workers.Go(d.newWorker().work)
	}
	return d
}

// NewDeliveryID returns a new random delivery id: 26 URL-safe characters (base32, 130 bits).
func NewDeliveryID() string { return rand.Text() }

// Enqueue queues dl on key's queue, setting dl.ID when it is empty; dl must not be changed
// afterwards. Deliveries with the same key are sent one at a time in Enqueue order: one
// is not sent before the one before it is settled, its retries and its done included.
// Different keys go in parallel, at most Concurrency at once, taking turns one delivery at
// a time. With BatchMax > 1, event deliveries go in batches, which hold the same promises:
// a key's events are in order within a batch and from one batch to the next, a key has at
// most one batch in flight, and each delivery of a batch gets its own done, in the batch's
// order. done, which may be nil, is called once, on a worker goroutine, when dl is
// settled; it holds up the key's next delivery and a worker while it runs, so it must not
// block for long, and it must not call [Deliverer.Close], which waits for the workers.
//
// Enqueue returns [ErrQueueFull] when key already has QueueSize deliveries waiting (the
// one in flight not counted) or dl would take the bytes waiting past QueueBytes, and [ErrClosed] after [Deliverer.Close]; done is then not
// called. What to do about a full queue is the caller's to decide (and count: see
// [Metrics.Dropped]).
func (d *Deliverer) Enqueue(key string, dl *Delivery, done func(Result)) error {
	return d.enqueue(key, dl, done, false)
}

// EnqueueLast is Enqueue for a key's last delivery (a socket's disconnect webhook): it is
// queued even when key's queue is full, so that the app always learns of the end of what it
// was told about. Calling it more than once for a key defeats the queue's bound.
func (d *Deliverer) EnqueueLast(key string, dl *Delivery, done func(Result)) error {
	return d.enqueue(key, dl, done, true)
}

func (d *Deliverer) enqueue(key string, dl *Delivery, done func(Result), last bool) error {
	if dl == nil {
		return errors.New("webhook: Enqueue: nil *Delivery")
	}
	if dl.ID == "" {
		dl.ID = NewDeliveryID()
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return ErrClosed
	}
	kq := d.keys[key]
	if kq != nil && !last && kq.waiting.len() > 0 &&
		(kq.waiting.len() >= d.opts.QueueSize || kq.bytes+len(dl.Body) > d.opts.QueueBytes) {
		d.mu.Unlock()
		return ErrQueueFull
	}
	q := queued{dl: dl, done: done}
	var writes uint64
	if d.spool != nil && dl.Kind != KindConnect {
		// Under d.mu, so that a key's deliveries are in the spool in their queue's order.
		var err error
		q.seq, writes, err = d.spool.Append(spool.Record{Key: key, ID: dl.ID, Kind: string(dl.Kind), Body: dl.Body})
		switch {
		case err == nil:
		case last && errors.Is(err, spool.ErrFull):
			// The app still learns of the end, unless this process stops first.
			d.opts.Logger.Warn("webhook: spool full: this delivery is kept in memory only", "key", key, "kind", dl.Kind, "delivery", dl.ID)
		default:
			d.mu.Unlock()
			return err
		}
	}
	switch {
	case kq == nil:
		kq = &keyQueue{key: key}
		d.keys[key] = kq
		d.ready.push(kq)
		d.cond.Signal()
		fallthrough
	case !d.joinForming(kq, q):
		kq.waiting.push(q)
		kq.bytes += len(dl.Body)
	}
	d.pending++
	d.mu.Unlock()
	d.metrics.addPending(1)
	if q.seq != 0 && d.spool.Fsync() == spool.FsyncAlways {
		if err := d.spool.Sync(writes); err != nil {
			// Written, so delivered unless the machine stops before the kernel writes it.
			d.opts.Logger.Warn("webhook: spool: accepted without fsync", "err", err)
		}
	}
	return nil
}

// replay queues the deliveries the spool kept from the last run, before any new one.
func (d *Deliverer) replay() {
	entries := d.spool.TakeReplay()
	if len(entries) == 0 {
		return
	}
	d.mu.Lock()
	for _, e := range entries {
		dl := &Delivery{ID: e.ID, Kind: Kind(e.Kind), Body: withBodyID(e.Body, e.ID)}
		kq := d.keys[e.Key]
		if kq == nil {
			kq = &keyQueue{key: e.Key}
			d.keys[e.Key] = kq
			d.ready.push(kq)
		}
		kq.waiting.push(queued{dl: dl, done: d.replayed, seq: e.Seq})
		kq.bytes += len(dl.Body)
		d.pending++
	}
	d.mu.Unlock()
	d.metrics.addPending(len(entries))
}

// withBodyID returns body with "id" as its first field, when it has none: a webhook spooled by
// a siobridge that did not write the delivery id in the body is delivered with it, so that
// the app finds it under the signature as in every other webhook.
func withBodyID(body []byte, id string) []byte {
	if len(body) < 2 || body[0] != '{' || bytes.HasPrefix(body, []byte(`{"id":`)) {
		return body
	}
	out := make([]byte, 0, len(body)+len(id)+8)
	out = append(out, `{"id":`...)
	out = jsonw.AppendString(out, id)
	if body[1] != '}' {
		out = append(out, ',')
	}
	return append(out, body[1:]...)
}

// replayed settles a delivery from the last run: its socket is gone, so the reply's actions
// have nothing to act on.
func (d *Deliverer) replayed(r Result) {
	switch {
	case r.Kept:
	case r.Err != nil:
		d.opts.Logger.Error("webhook: spooled "+string(r.Delivery.Kind)+" given up", "delivery", r.Delivery.ID, "kind", r.Delivery.Kind,
			"attempts", r.Attempts, "status", r.StatusCode, "err", r.Err)
	case r.StatusCode >= 300:
		d.opts.Logger.Warn("webhook: spooled delivery refused by the app", "delivery", r.Delivery.ID, "kind", r.Delivery.Kind, "status", r.StatusCode)
	}
}

// Pending is the number of deliveries queued or in flight; one leaves the count when its
// done returns.
func (d *Deliverer) Pending() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pending
}

// Close stops accepting deliveries ([Deliverer.Enqueue] returns [ErrClosed]) and lets the
// queued and in-flight ones finish, retries included, until ctx ends. Then it cancels what
// remains: requests in flight are aborted, and the done of each delivery not settled gets
// an Err wrapping ErrClosed. It returns when the workers have exited, with the number of
// deliveries cancelled. A second Close waits the same way and returns the same count.
// Cancelled deliveries that are in the spool stay there (see [Deliverer.Kept]).
func (d *Deliverer) Close(ctx context.Context) int {
	d.mu.Lock()
	if !d.closed {
		close(d.closing)
	}
	d.closed = true
	d.cond.Broadcast() // idle workers exit if nothing is pending
	d.mu.Unlock()

	// Waiting on a goroutine of Close's own, so that ctx can cut the wait short; it ends
	// with the workers, which the cancellation below makes exit.
	exited := make(chan struct{})
	go func() {
		d.workers.Wait()
		close(exited)
	}()
	select {
	case <-exited:
	case <-ctx.Done():
		d.cancel(ErrClosed)
		<-exited
	}
	d.cancel(ErrClosed)
	if d.transport != nil {
		d.transport.CloseIdleConnections()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancelled
}

// Settled counts the deliveries settled so far: those the app took (a 2xx reply), those it
// refused (a final 4xx) and those given up (no final reply: Result.Err set), less the ones
// kept in the spool for the next run.
type Settled struct {
	Delivered, Refused, GivenUp int64
}

// Settled returns the counts of the deliveries settled since [NewDeliverer].
func (d *Deliverer) Settled() Settled {
	return Settled{Delivered: d.delivered.Load(), Refused: d.refused.Load(), GivenUp: d.givenUp.Load()}
}

// settled records how a delivery was settled.
func (d *Deliverer) settled(r *Result) {
	d.metrics.settled(r)
	switch {
	case r.Kept:
	case r.Err != nil:
		d.givenUp.Add(1)
	case r.StatusCode >= 200 && r.StatusCode <= 299:
		d.delivered.Add(1)
	default:
		d.refused.Add(1)
	}
}

// Kept is the number of deliveries that [Deliverer.Close] cancelled and left in the spool,
// for the next run to deliver.
func (d *Deliverer) Kept() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.kept
}

// worker is one of the goroutines that deliver. What it keeps from one delivery to the next
// is its own, used on its goroutine only: the delivery in flight, its keyed HMAC, the reply's
// body wrapper.
type worker struct {
	d    *Deliverer
	cur  attempt
	mac  hash.Hash    // keyed with the secret; nil without one
	body timedBody    // the body of the reply of the attempt in flight
	log  *slog.Logger // the debug lines of each attempt; nil when debug was not enabled at NewDeliverer
}

// attempt is a delivery's state across its attempts.
type attempt struct {
	dl          *Delivery
	n           int       // attempts begun
	lastStatus  int       // the last reply's status
	deadline    time.Time // no retry begins after it; zero: no limit
	maxAttempts int       // 0: no cap
}

func (d *Deliverer) newWorker() *worker {
	w := &worker{d: d}
	if d.signer != nil {
		w.mac = d.signer.newMAC()
	}
	// The attempt's lines are formatted whether or not they are written: the worker gets a
	// logger only when they would be.
	if d.opts.Logger.Enabled(context.Background(), slog.LevelDebug) {
		w.log = d.opts.Logger
	}
	return w
}

// work delivers one delivery of a ready key at a time, then puts the key at the back of
// the ready queue if it has more, so that keys take turns.
func (w *worker) work() {
	d := w.d
	d.mu.Lock()
	for {
		for d.ready.len() == 0 {
			if d.closed && d.pending == 0 {
				d.mu.Unlock()
				return
			}
			d.cond.Wait()
		}
		kq := d.ready.pop()
		if d.opts.BatchMax > 1 && kq.waiting.peek().dl.Kind == KindEvent {
			if b := d.forming; b != nil && !b.isFull() {
				b.take(kq) // its worker sends it
				continue
			}
			w.deliverBatch(kq)
			continue
		}
		q := kq.waiting.pop()
		kq.bytes -= len(q.dl.Body)
		d.mu.Unlock()

		res, cancelled := w.send(q.dl, q.seq != 0, 0)
		if q.seq != 0 {
			if cancelled {
				res.Kept = true
			} else {
				d.spool.MarkDone(q.seq)
			}
		}
		d.settled(&res)
		if q.done != nil {
			q.done(res)
		}

		d.mu.Lock()
		d.pending--
		if cancelled {
			d.cancelled++
			if q.seq != 0 {
				d.kept++
			}
		}
		if kq.waiting.len() > 0 {
			d.ready.push(kq) // no Signal: this worker takes a ready key next
		} else {
			delete(d.keys, kq.key)
		}
		if d.closed && d.pending == 0 {
			d.cond.Broadcast()
		}
		d.metrics.addPending(-1)
	}
}

// send delivers dl with its retries, without a limit when durable. cancelled reports that
// Close cut it short. batchSize > 0 sends dl as a batch of that many events.
func (w *worker) send(dl *Delivery, durable bool, batchSize int) (res Result, cancelled bool) {
	d := w.d
	res.Delivery = dl
	if d.urlErr != nil {
		res.Err = d.urlErr
		return res, false
	}
	if d.ctx.Err() != nil {
		res.Err = fmt.Errorf("%w: POST %s cancelled before its first attempt", ErrClosed, d.shownURL)
		return res, true
	}
	// The constant values are shared slices: net/http only reads them, and a retry clones
	// the header before it changes anything (do). At most 8 keys: a map of one group.
	h := make(http.Header, 8)
	h["Content-Type"] = jsonContentType
	h["User-Agent"] = d.userAgent
	h[HeaderType] = kindHeader(dl.Kind)
	if batchSize > 0 {
		h[HeaderType] = batchType
		h[HeaderBatchSize] = []string{strconv.Itoa(batchSize)}
	}
	h[HeaderDelivery] = []string{dl.ID}
	if d.auth != nil {
		h["Authorization"] = d.auth
	}

	start := time.Now()
	w.cur = attempt{dl: dl}
	st := &w.cur
	if !durable {
		st.maxAttempts = d.opts.MaxAttempts
		retryFor := d.opts.RetryFor
		if dl.Kind == KindConnect {
			retryFor = d.opts.ConnectRetryFor
		}
		if retryFor > 0 {
			st.deadline = start.Add(retryFor)
		}
	}
	resp, err := w.do(h, dl.Body)
	var readErr error
	if resp != nil {
		res.StatusCode = resp.StatusCode
		res.Body, readErr = readReply(resp)
	} else {
		// Cancelled while waiting to retry: the reply was discarded.
		res.StatusCode = st.lastStatus
	}
	res.Duration = time.Since(start)
	res.Attempts = st.n
	w.cur = attempt{}

	// complete: the app's final answer came whole, and Close cut nothing short.
	complete := err == nil && isFinal(resp.StatusCode) && (readErr == nil || errors.Is(readErr, ErrReplyTooLarge))
	switch {
	case !complete && d.ctx.Err() != nil:
		res.Err = fmt.Errorf("%w: POST %s cancelled after %s", ErrClosed, d.shownURL, attempts(res.Attempts))
		return res, true
	case err != nil:
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // it repeats the URL
		}
		res.Err = fmt.Errorf("webhook: POST %s: %w after %s", d.shownURL, err, attempts(res.Attempts))
	case !isFinal(resp.StatusCode):
		res.Err = fmt.Errorf("webhook: POST %s: %s after %s", d.shownURL, resp.Status, attempts(res.Attempts))
		if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
			res.Err = fmt.Errorf("%w (redirects are not followed: set webhook.url to the final URL)", res.Err)
		}
	case errors.Is(readErr, ErrReplyTooLarge):
		res.Err = fmt.Errorf("%w: POST %s answered %s", ErrReplyTooLarge, d.shownURL, resp.Status)
	case readErr != nil:
		res.Err = fmt.Errorf("webhook: POST %s: reading the %s reply: %w", d.shownURL, resp.Status, readErr)
	}
	return res, false
}

var jsonContentType = []string{"application/json"}

// kindHeaders are the HeaderType values of the kinds, made once.
var kindHeaders = map[Kind][]string{KindConnect: {string(KindConnect)}, KindEvent: {string(KindEvent)}, KindDisconnect: {string(KindDisconnect)}}

func kindHeader(k Kind) []string {
	if v, ok := kindHeaders[k]; ok {
		return v
	}
	return []string{string(k)}
}

// isFinal reports whether a reply with this status settles a delivery: the app took it
// (2xx) or refused it for good (4xx but 408 and 429, which ask to come back later).
func isFinal(code int) bool {
	switch {
	case code >= 200 && code <= 299:
		return true
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests:
		return false
	default:
		return code >= 400 && code <= 499
	}
}

func attempts(n int) string {
	if n == 1 {
		return "1 attempt"
	}
	return strconv.Itoa(n) + " attempts"
}

// readReply reads and closes a reply's body, up to maxReplySize.
func readReply(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	if resp.ContentLength > maxReplySize {
		return nil, ErrReplyTooLarge
	}
	if resp.ContentLength >= 0 {
		b := make([]byte, resp.ContentLength)
		if _, err := io.ReadFull(resp.Body, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxReplySize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxReplySize {
		return nil, ErrReplyTooLarge
	}
	return b, nil
}

// checkRetry retries connection errors and timeouts, 408, 429 and 5xx but 501, while the
// delivery's attempts and time last, and nothing once Close has cancelled it.
func (w *worker) checkRetry(ctx context.Context, resp *http.Response, err error) bool {
	st := &w.cur
	if ctx.Err() != nil ||
		(st.maxAttempts > 0 && st.n >= st.maxAttempts) ||
		(!st.deadline.IsZero() && !time.Now().Before(st.deadline)) {
		return false
	}
	return retryable(ctx, resp, err)
}

// retryable reports whether an attempt's outcome is worth a retry: a connection error or
// timeout, 408, 429, or a 5xx but 501.
func retryable(ctx context.Context, resp *http.Response, err error) bool {
	if err != nil {
		// retryablehttp's policy knows the errors that a retry cannot fix: a bad scheme or
		// header, too many redirects, an untrusted certificate.
		retry, _ := retryablehttp.ErrorPropagatedRetryPolicy(ctx, nil, err)
		return retry
	}
	code := resp.StatusCode
	return code == http.StatusRequestTimeout || code == http.StatusTooManyRequests ||
		(code >= 500 && code != http.StatusNotImplemented)
}

// backoff is the wait before a retry, shortened so that the retry begins by the delivery's
// deadline.
func (w *worker) backoff(lo, hi time.Duration, attemptNum int, resp *http.Response) time.Duration {
	wait := backoff(lo, hi, attemptNum, resp)
	if dl := w.cur.deadline; !dl.IsZero() {
		wait = max(min(wait, time.Until(dl)), 0)
	}
	return wait
}

// backoff honours Retry-After (seconds or an HTTP date) on 429 and 503, up to
// maxRetryAfter; otherwise it waits lo, 2lo, 4lo... up to hi, each reduced by a random part
// of up to a half (but not below lo) so that keys failing together do not retry together.
func backoff(lo, hi time.Duration, attemptNum int, resp *http.Response) time.Duration {
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) &&
		resp.Header.Get("Retry-After") != "" {
		// DefaultBackoff parses Retry-After, and backs off exponentially when it cannot.
		return min(retryablehttp.DefaultBackoff(lo, hi, attemptNum, resp), maxRetryAfter)
	}
	wait := retryablehttp.DefaultBackoff(lo, hi, attemptNum, nil)
	if floor := max(wait/2, lo); wait > floor {
		wait = floor + randv2.N(wait-floor+1)
	}
	return wait
}

// fifo is a queue on a slice that reuses its array once drained.
type fifo[T any] struct {
	buf  []T
	head int
}

func (q *fifo[T]) len() int { return len(q.buf) - q.head }

func (q *fifo[T]) push(v T) { q.buf = append(q.buf, v) }

// peek returns the first value, which must exist.
func (q *fifo[T]) peek() T { return q.buf[q.head] }

func (q *fifo[T]) pop() T {
	var zero T
	v := q.buf[q.head]
	q.buf[q.head] = zero
	q.head++
	switch {
	case q.head == len(q.buf):
		q.buf, q.head = q.buf[:0], 0
	case q.head >= 64 && q.head*2 >= len(q.buf):
		n := copy(q.buf, q.buf[q.head:])
		clear(q.buf[n:])
		q.buf, q.head = q.buf[:n], 0
	}
	return v
}
