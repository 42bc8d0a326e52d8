package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The headers of every webhook request.
const (
	// HeaderType carries the delivery's [Kind], or "batch" for a batch of events.
	HeaderType = "X-Siobridge-Type"
	// HeaderDelivery carries the delivery's ID, the same on every attempt: the app can use
	// it to ignore a delivery it has already handled.
	HeaderDelivery = "X-Siobridge-Delivery"
	// HeaderAttempt carries the attempt's number, from 1.
	HeaderAttempt = "X-Siobridge-Attempt"
	// HeaderBatchSize carries the number of events of a batch (see
	// [DelivererOptions].BatchMax), whose HeaderType is "batch"; absent from other webhooks.
	HeaderBatchSize = "X-Siobridge-Batch-Size"
	// HeaderSignature carries [Sign]'s value when a secret is set; check it with [Verify].
	HeaderSignature = "X-Siobridge-Signature"
)

// DefaultTolerance is how far from now [Verify] accepts a signature's timestamp when it is
// given a tolerance of 0.
const DefaultTolerance = 5 * time.Minute

// Sign returns the value of the X-Siobridge-Signature header for body sent at t:
// "t=<unix seconds>,v1=<hex HMAC-SHA256 of "<unix seconds>.<body>" keyed with secret>".
// The timestamp is signed with the body so that a captured request cannot be replayed
// later than the receiver's tolerance.
func Sign(secret string, t time.Time, body []byte) string {
	return signature(hmac.New(sha256.New, []byte(secret)), t, body)
}

// signer signs like [Sign] with one secret, reusing its keyed HMAC states: a Deliverer signs
// every attempt of every webhook, and a fresh HMAC costs two hash states and the key pads.
// Each worker keeps one of its own (newMAC); sign is for any goroutine.
type signer struct {
	secret []byte
	macs   sync.Pool // of hash.Hash, keyed with the secret
}

func newSigner(secret string) *signer {
	sg := &signer{secret: []byte(secret)}
	sg.macs.New = func() any { return sg.newMAC() }
	return sg
}

// newMAC returns a new HMAC-SHA256 keyed with the secret, for one goroutine to reuse after
// a Reset.
func (sg *signer) newMAC() hash.Hash { return hmac.New(sha256.New, sg.secret) }

// sign returns Sign(secret, t, body).
func (sg *signer) sign(t time.Time, body []byte) string {
	h := sg.macs.Get().(hash.Hash)
	h.Reset()
	v := signature(h, t, body)
	sg.macs.Put(h)
	return v
}

// signature is Sign's value with h, a keyed HMAC-SHA256 in its initial state.
func signature(h hash.Hash, t time.Time, body []byte) string {
	var buf [20]byte
	ts := strconv.AppendInt(buf[:0], t.Unix(), 10)
	var sum [sha256.Size]byte
	macInto(h, ts, body, sum[:0])
	var outBuf [len("t=,v1=") + len(buf) + 2*sha256.Size]byte
	out := append(outBuf[:0], "t="...)
	out = append(out, ts...)
	out = append(out, ",v1="...)
	out = hex.AppendEncode(out, sum[:])
	return string(out)
}

// macInto appends to dst the HMAC that h computes of "<ts>.<body>".
func macInto(h hash.Hash, ts, body, dst []byte) []byte {
	ts = append(ts, '.') // ts has room: signature's buffer, or mac's copy
	h.Write(ts)
	h.Write(body)
	return h.Sum(dst)
}

func mac(secret, ts string, body []byte) []byte {
	return macInto(hmac.New(sha256.New, []byte(secret)), []byte(ts), body, nil)
}

// Verify checks header, the X-Siobridge-Signature value of a request whose raw body is
// body, against secret: one of its v1 signatures must be the HMAC-SHA256 of
// "<t>.<body>" (compared in constant time), and its timestamp t must be no further than
// tolerance from now, either way, so that a captured request cannot be replayed. A
// tolerance of 0 or less means [DefaultTolerance]. Several v1 values are accepted, any of
// which may match, so that a sender can sign with an old and a new secret while they are
// rotated; keys other than t and v1 are ignored. The error says what is wrong.
func Verify(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if secret == "" {
		return errors.New("webhook: signature: no secret to verify with")
	}
	if header == "" {
		return errors.New("webhook: signature: missing " + HeaderSignature + " header")
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	var (
		ts   string
		sigs [][]byte
	)
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return malformed(header, fmt.Sprintf("%q is not key=value", part))
		}
		switch k {
		case "t":
			if ts != "" {
				return malformed(header, "more than one t")
			}
			if _, err := strconv.ParseInt(v, 10, 64); err != nil || v == "" {
				return malformed(header, fmt.Sprintf("t=%q is not a number of seconds", v))
			}
			ts = v
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size {
				return malformed(header, fmt.Sprintf("v1=%q is not %d hex digits", v, 2*sha256.Size))
			}
			sigs = append(sigs, sig)
		}
	}
	if ts == "" {
		return malformed(header, "no t")
	}
	if len(sigs) == 0 {
		return malformed(header, "no v1")
	}
	want := mac(secret, ts, body)
	match := false
	for _, sig := range sigs {
		// No early exit: the time taken does not tell which signature matched.
		if hmac.Equal(want, sig) {
			match = true
		}
	}
	if !match {
		return errors.New("webhook: signature: no v1 matches the body: the secret differs from siobridge's, or the body was changed (verify the raw bytes received, before any parsing)")
	}
	sec, _ := strconv.ParseInt(ts, 10, 64)
	if skew := now.Sub(time.Unix(sec, 0)); skew > tolerance || skew < -tolerance {
		return fmt.Errorf("webhook: signature: timestamp %s is %s from now, more than the tolerance of %s: a replayed request, or clocks out of step",
			time.Unix(sec, 0).UTC().Format(time.RFC3339), skew.Abs().Round(time.Second), tolerance)
	}
	return nil
}

func malformed(header, why string) error {
	return fmt.Errorf("webhook: signature: malformed header %q: %s; want t=<unix seconds>,v1=<hex HMAC-SHA256>", header, why)
}
