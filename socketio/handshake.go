package socketio

import (
	"encoding/json"
	"net"
	"strings"

	"github.com/siobridge/siobridge/engineio"
)

// Handshake is what a socket's connection carried, in the shape of Node's socket.handshake.
type Handshake struct {
	// Address is the client's IP address: the connection's, or the one a trusted proxy
	// forwarded for (engineio.Options.TrustedProxies).
	Address string `json:"address"`
	// Headers are the handshake request's headers, names in lower case, repeated values joined
	// with ", ".
	Headers map[string]string `json:"headers"`
	// Query holds the handshake request's query parameters (the first value of each).
	Query map[string]string `json:"query"`
	// Auth is the client's auth payload from its CONNECT packet, {} when it sent none.
	Auth json.RawMessage `json:"auth"`
	// Time is when the connection was made, in RFC 3339 form.
	Time string `json:"time"`
	// Issued is the same instant in Unix milliseconds.
	Issued int64 `json:"issued"`
	// Secure is true over TLS.
	Secure bool `json:"secure"`
	// XDomain is true when the request came with an Origin header.
	XDomain bool `json:"xdomain"`
	// URL is the handshake request's path and query.
	URL string `json:"url"`
}

func newHandshake(h *engineio.Handshake, auth json.RawMessage) *Handshake {
	headers := make(map[string]string, len(h.Header))
	for k, v := range h.Header {
		headers[strings.ToLower(k)] = strings.Join(v, ", ")
	}
	query := make(map[string]string, len(h.Query))
	for k, v := range h.Query {
		if len(v) > 0 {
			query[k] = v[0]
		}
	}
	addr := h.Address
	if addr == "" {
		addr = h.RemoteAddr
		if host, _, err := net.SplitHostPort(addr); err == nil {
			addr = host
		}
	}
	if len(auth) == 0 {
		auth = json.RawMessage("{}")
	}
	return &Handshake{
		Address: addr,
		Headers: headers,
		Query:   query,
		Auth:    auth,
		Time:    h.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		Issued:  h.Time.UnixMilli(),
		Secure:  h.Secure,
		XDomain: h.Header.Get("Origin") != "",
		URL:     h.URL,
	}
}
