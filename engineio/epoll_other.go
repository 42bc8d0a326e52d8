//go:build !linux

package engineio

import (
	"log/slog"
	"net"

	"github.com/siobridge/siobridge/engineio/internal/wsframe"
	"github.com/siobridge/siobridge/internal/group"
)

// epoller is Linux's alone (epoll_linux.go); elsewhere every WebSocket has its reader goroutine.
type epoller struct{}

// epollConn is a registration with the epoller, which other systems never make.
type epollConn struct{}

// newEpoller returns nil: the server runs without an epoller.
func newEpoller(*group.Group, *slog.Logger) *epoller { return nil }

func (p *epoller) add(*Session, net.Conn, wsframe.Reader) error { panic("engineio: no poller") }
func (p *epoller) remove(*epollConn)                            {}
func (p *epoller) addHeld(*heldConn, net.Conn) (*epollConn, error) {
	panic("engineio: no poller")
}
func (p *epoller) close() {}

func (pc *epollConn) writeNow([]byte) (int, error) { panic("engineio: no poller") }
