package heldhttp

import "net"

// PrefixConn is a connection given back to net/http: its Reads return Prefix, what was read of
// it already, before the connection's own bytes.
type PrefixConn struct {
	net.Conn
	Prefix []byte
}

// Read reads what is left of Prefix, then the connection.
func (c *PrefixConn) Read(p []byte) (int, error) {
	if len(c.Prefix) > 0 {
		n := copy(p, c.Prefix)
		c.Prefix = c.Prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
