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
	hdr := h.Header()
	headers := make(map[string]string, len(hdr))
	for k, v := range hdr {
		headers[lowerHeaderName(k)] = strings.Join(v, ", ")
	}
	q := h.Query()
	query := make(map[string]string, len(q))
	for k, v := range q {
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
		Time:    h.Time().UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		Issued:  h.Time().UnixMilli(),
		Secure:  h.Secure,
		XDomain: hdr.Get("Origin") != "",
		URL:     h.URL,
	}
}

// lowerHeaderName is strings.ToLower for header names in canonical form, without allocating
// for the headers browsers and Socket.IO clients usually send: the copy every socket keeps
// shares these constant strings.
func lowerHeaderName(k string) string {
	switch k {
	case "Accept":
		return "accept"
	case "Accept-Encoding":
		return "accept-encoding"
	case "Accept-Language":
		return "accept-language"
	case "Authorization":
		return "authorization"
	case "Cache-Control":
		return "cache-control"
	case "Connection":
		return "connection"
	case "Content-Length":
		return "content-length"
	case "Content-Type":
		return "content-type"
	case "Cookie":
		return "cookie"
	case "Host":
		return "host"
	case "Origin":
		return "origin"
	case "Pragma":
		return "pragma"
	case "Referer":
		return "referer"
	case "Sec-Websocket-Extensions":
		return "sec-websocket-extensions"
	case "Sec-Websocket-Key":
		return "sec-websocket-key"
	case "Sec-Websocket-Version":
		return "sec-websocket-version"
	case "Upgrade":
		return "upgrade"
	case "User-Agent":
		return "user-agent"
	case "X-Forwarded-For":
		return "x-forwarded-for"
	case "X-Forwarded-Proto":
		return "x-forwarded-proto"
	}
	return strings.ToLower(k)
}
