package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// A delivery's attempts are sent by its worker straight through the transport: each is what
// an http.Client with Timeout and no redirects would send and return (the same request, the
// same errors, the timeout from the attempt's start to the end of the reply's body), and the
// loop around them is what go-retryablehttp's Client.Do did with the hooks the Deliverer gave
// it (its retry policy for errors and its backoff are still the ones deciding; see
// checkRetry and backoff). Doing it here spares each webhook the http.Client's timer
// goroutine (it makes one per request for a transport it does not know, as the Deliverer's
// was behind a wrapper), a copy of the request and of its headers, and retryablehttp's
// request and body closures.

// attemptOne is the HeaderAttempt of first attempts, shared: net/http only reads it.
var attemptOne = []string{"1"}

// do sends the delivery in w.cur, with header h and body, until an attempt settles it or
// checkRetry stops its retries, and returns the last attempt's reply (its body still to be
// read, then closed) or error; nil and d.ctx's error when Close cancels it while it waits to
// retry. The attempt in flight is cancelled when its reply's body is closed.
func (w *worker) do(h http.Header, body []byte) (*http.Response, error) {
	d := w.d
	if w.log != nil {
		w.log.Debug("webhook: performing request", "method", http.MethodPost, "url", d.shownURL)
	}
	getBody := func() (io.ReadCloser, error) { return newRequestBody(body), nil }
	for i := 0; ; i++ {
		if i > 0 {
			// The last attempt's request may still be read by the transport if that attempt
			// timed out: this one has its own header.
			h = h.Clone()
		}
		w.beforeAttempt(h, i)
		deadline := time.Now().Add(d.opts.Timeout)
		ctx, cancel := context.WithDeadline(d.ctx, deadline)
		req := d.target.WithContext(ctx)
		req.Header = h
		req.Body, req.GetBody, req.ContentLength = newRequestBody(body), getBody, int64(len(body))
		resp, err := w.roundTrip(req, deadline, cancel)

		shouldRetry := w.checkRetry(d.ctx, resp, err)
		if err != nil {
			if w.log != nil {
				w.log.Debug("webhook: request failed", "error", err, "method", http.MethodPost, "url", d.shownURL)
			}
		} else {
			w.cur.lastStatus = resp.StatusCode
		}
		if !shouldRetry {
			return resp, err
		}

		if err == nil {
			w.drain(resp.Body)
		}
		wait := w.backoff(d.opts.RetryWaitMin, d.opts.RetryWaitMax, i, resp)
		if w.log != nil {
			desc := http.MethodPost + " " + d.shownURL
			if resp != nil {
				desc = fmt.Sprintf("%s (status: %d)", desc, resp.StatusCode)
			}
			w.log.Debug("webhook: retrying request", "request", desc, "timeout", wait, "remaining", math.MaxInt32-i)
		}
		timer := time.NewTimer(wait)
		select {
		case <-d.ctx.Done():
			timer.Stop()
			return nil, d.ctx.Err()
		case <-timer.C:
		}
	}
}

// beforeAttempt runs before every attempt, the first included (retry is 0 for it): it
// stamps the attempt's number and a fresh signature in h.
func (w *worker) beforeAttempt(h http.Header, retry int) {
	st := &w.cur
	st.n = retry + 1
	if st.n == 1 {
		h[HeaderAttempt] = attemptOne
	} else {
		h[HeaderAttempt] = []string{strconv.Itoa(st.n)}
	}
	if w.mac != nil {
		w.mac.Reset()
		h[HeaderSignature] = []string{signature(w.mac, time.Now(), st.dl.Body)}
	}
	w.d.metrics.attempt(st.dl.Kind, retry > 0)
}

// roundTrip sends one attempt and returns what http.Client.Do would for it, with the
// client's Timeout ending at deadline: errors in a *url.Error, a timeout said so, and the
// reply's body wrapped so that reading it after the deadline says so too and closing it
// calls cancel, as the client's timer does. cancel is called at once when there is no reply.
func (w *worker) roundTrip(req *http.Request, deadline time.Time, cancel context.CancelFunc) (*http.Response, error) {
	rt := w.d.rt
	resp, err := rt.RoundTrip(req)
	if err != nil {
		cancel()
		if tlsErr, ok := err.(tls.RecordHeaderError); ok && string(tlsErr.RecordHeader[:]) == "HTTP/" {
			err = http.ErrSchemeMismatch
		}
		if time.Now().After(deadline) {
			err = &timeoutError{err.Error() + " (Client.Timeout exceeded while awaiting headers)"}
		}
		return nil, w.urlError(err)
	}
	if resp == nil {
		cancel()
		return nil, w.urlError(fmt.Errorf("http: RoundTripper implementation (%T) returned a nil *Response with a nil error", rt))
	}
	if resp.Body == nil {
		if resp.ContentLength > 0 {
			cancel()
			return nil, w.urlError(fmt.Errorf("http: RoundTripper implementation (%T) returned a *Response with content length %d but a nil Body", rt, resp.ContentLength))
		}
		resp.Body = io.NopCloser(strings.NewReader(""))
	}
	w.body = timedBody{rc: resp.Body, deadline: deadline, cancel: cancel}
	resp.Body = &w.body
	switch resp.StatusCode {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		// The client reads the Location of a redirect before it is told not to follow it,
		// and fails the request when it cannot.
		if loc := resp.Header.Get("Location"); loc != "" {
			if _, err := req.URL.Parse(loc); err != nil {
				resp.Body.Close()
				return nil, w.urlError(fmt.Errorf("failed to parse Location header %q: %v", loc, err))
			}
		}
	}
	return resp, nil
}

// urlError wraps an attempt's error as http.Client does.
func (w *worker) urlError(err error) error {
	return &url.Error{Op: "Post", URL: w.d.errURL, Err: err}
}

// drain reads what is left of a reply's body, so that its connection can carry the retry,
// and closes it.
func (w *worker) drain(body io.ReadCloser) {
	defer body.Close()
	if _, err := io.Copy(io.Discard, io.LimitReader(body, 4096)); err != nil && w.log != nil {
		w.log.Debug("webhook: error reading response body", "error", err)
	}
}

// newRequestBody is a request's body: the delivery's bytes, read from the start by each
// attempt. It is an io.NopCloser of a *bytes.Reader, which net/http knows to be in memory: it
// writes the header and such a body in one write, where a body of another type gets a write
// of its own after the header's.
func newRequestBody(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }

// timedBody is a reply's body read until the attempt's deadline, as http.Client's Timeout
// bounds it.
type timedBody struct {
	rc       io.ReadCloser
	deadline time.Time
	cancel   context.CancelFunc
}

func (b *timedBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err == nil || err == io.EOF {
		return n, err
	}
	if time.Now().After(b.deadline) {
		err = &timeoutError{err.Error() + " (Client.Timeout or context cancellation while reading body)"}
	}
	return n, err
}

func (b *timedBody) Close() error {
	err := b.rc.Close()
	b.cancel()
	return err
}

// timeoutError is net/http's error for a Client.Timeout passed: a net.Error whose Timeout
// is true, and that matches context.DeadlineExceeded.
type timeoutError struct{ err string }

func (e *timeoutError) Error() string   { return e.err }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }
func (e *timeoutError) Is(err error) bool {
	return err == context.DeadlineExceeded
}

// stripPassword is the URL as http.Client's errors show it: a password as ***.
func stripPassword(u *url.URL) string {
	if _, ok := u.User.Password(); ok {
		return strings.Replace(u.String(), u.User.String()+"@", u.User.Username()+":***@", 1)
	}
	return u.String()
}
