package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSignMatchesHMAC(t *testing.T) {
	at := time.Unix(1700000000, 0)
	body := []byte(`{"type":"event","event":"chat"}`)
	got := Sign("k3y", at, body)

	m := hmac.New(sha256.New, []byte("k3y"))
	m.Write([]byte("1700000000." + string(body)))
	want := "t=1700000000,v1=" + hex.EncodeToString(m.Sum(nil))
	if got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
}

func TestVerify(t *testing.T) {
	const secret = "whsec_test"
	now := time.Unix(1700000000, 0)
	body := []byte(`{"type":"connect"}`)
	good := Sign(secret, now, body)
	other := Sign("another secret", now, body)

	tests := []struct {
		name      string
		secret    string
		header    string
		body      []byte
		tolerance time.Duration
		wantErr   string // "" for none
	}{
		{name: "good", secret: secret, header: good, body: body},
		{name: "good, a second old, no tolerance given", secret: secret, header: Sign(secret, now.Add(-time.Second), body), body: body},
		{name: "good, spaces around parts", secret: secret, header: strings.ReplaceAll(good, ",", " , "), body: body},
		{name: "one of two v1 matches (secret rotation)", secret: secret, header: other + "," + good[strings.Index(good, "v1="):], body: body},
		{name: "unknown keys ignored", secret: secret, header: good + ",v0=abc", body: body},
		{name: "wrong secret", secret: "wrong", header: good, body: body, wantErr: "no v1 matches the body"},
		{name: "tampered body", secret: secret, header: good, body: []byte(`{"type":"connect" }`), wantErr: "no v1 matches the body"},
		{name: "old timestamp", secret: secret, header: Sign(secret, now.Add(-6*time.Minute), body), body: body, wantErr: "more than the tolerance of 5m0s"},
		{name: "future timestamp", secret: secret, header: Sign(secret, now.Add(time.Minute), body), body: body, tolerance: 30 * time.Second, wantErr: "1m0s from now"},
		{name: "old timestamp within a wider tolerance", secret: secret, header: Sign(secret, now.Add(-6*time.Minute), body), body: body, tolerance: 10 * time.Minute},
		{name: "missing header", secret: secret, header: "", body: body, wantErr: "missing X-Siobridge-Signature"},
		{name: "no secret", secret: "", header: good, body: body, wantErr: "no secret"},
		{name: "not key=value", secret: secret, header: "garbage", body: body, wantErr: "malformed header"},
		{name: "no t", secret: secret, header: good[strings.Index(good, "v1="):], body: body, wantErr: "no t"},
		{name: "no v1", secret: secret, header: "t=1700000000", body: body, wantErr: "no v1"},
		{name: "t not a number", secret: secret, header: "t=yesterday," + good[strings.Index(good, "v1="):], body: body, wantErr: "not a number"},
		{name: "two t", secret: secret, header: "t=1," + good, body: body, wantErr: "more than one t"},
		{name: "v1 not hex", secret: secret, header: "t=1700000000,v1=zz", body: body, wantErr: "not 64 hex digits"},
		{name: "v1 too short", secret: secret, header: "t=1700000000,v1=abcd", body: body, wantErr: "not 64 hex digits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.secret, tt.header, tt.body, now, tt.tolerance)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Verify: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("Verify accepted %q, want an error containing %q", tt.header, tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("Verify: %v\nwant an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// A Deliverer's signer, which reuses its HMAC states, signs as Sign does, from any goroutine.
func TestSignerMatchesSign(t *testing.T) {
	sg := newSigner("s3cret")
	now := time.Unix(1795750800, 0)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				body := []byte(fmt.Sprintf(`{"n":%d,"g":%d}`, i, g))
				at := now.Add(time.Duration(i) * time.Second)
				if got, want := sg.sign(at, body), Sign("s3cret", at, body); got != want {
					t.Errorf("signer %q, Sign %q", got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}
