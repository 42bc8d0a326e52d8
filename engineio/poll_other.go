//go:build !linux

package engineio

import (
	"log/slog"
	"net"

	"github.com/siobridge/siobridge/engineio/internal/wsframe"
	"github.com/siobridge/siobridge/internal/group"
)

// poller is Linux's alone (poll_linux.go); elsewhere every WebSocket has its reader goroutine.
type poller struct{}

// pollConn is a registration with the poller, which other systems never make.
type pollConn struct{}

// newPoller returns nil: the server runs without a poller.
func newPoller(*group.Group, *slog.Logger) *poller { return nil }

func (p *poller) add(*Session, net.Conn, wsframe.Reader) error { panic("engineio: no poller") }
func (p *poller) remove(*pollConn)                             {}
func (p *poller) addHTTP(*httpConn, net.Conn) (*pollConn, error) {
	panic("engineio: no poller")
}
func (p *poller) close() {}

func (pc *pollConn) writeNow([]byte) (int, error) { panic("engineio: no poller") }
