package engineio

// heldState is where a held connection is in its cycle of requests; heldConn.mu guards it.
// Who acts on the connection follows from it: in heldServing and heldResuming one goroutine
// serves its requests; in heldParking that goroutine is finishing the GET it parked; in
// heldParked and heldIdle none does, and the next one is the parked GET's answer or the
// epoller's reader, when bytes come. Bytes read in any state but heldClosed wait in hc.in.
type heldState uint8

const (
	// heldIdle: nothing to serve and no GET parked.
	heldIdle heldState = iota
	// heldServing: a goroutine serves the requests read: the handler whose GET took the
	// connection from net/http, the epoller's reader, or the goroutine that answered a
	// parked GET.
	heldServing
	// heldParking: the GET being served has nothing to answer and is parked (hc.parked); the
	// goroutine that served it has not stopped yet.
	heldParking
	// heldParked: the GET waits for its answer, with no goroutine.
	heldParked
	// heldResuming: the parked GET was answered before the goroutine that parked it stopped:
	// that goroutine goes on serving.
	heldResuming
	// heldClosed: closed, or handed back to net/http. Final.
	heldClosed
)

// heldEvent is what moves a held connection to another state.
type heldEvent uint8

const (
	// evStart: there are bytes to serve and nobody serving them: bytes read on an idle
	// connection, or bytes that came behind a parked GET once it is answered.
	evStart heldEvent = iota
	// evWait: the request at the start of hc.in is incomplete, or there is none.
	evWait
	// evPark: the GET being served has nothing to answer.
	evPark
	// evParked: the goroutine that parked a GET is done serving it.
	evParked
	// evAnswer: the parked GET's answer is written.
	evAnswer
	// evClose: the connection is closed, or handed back to net/http.
	evClose
)

// next is the state a held connection goes to from s on ev, and false when ev does not apply
// in s (s then stays). Every transition is here:
//
//	from \ on  start    wait  park     parked   answer    close
//	idle       serving  -     -        -        -         closed
//	serving    -        idle  parking  -        -         closed
//	parking    -        -     -        parked   resuming  closed
//	parked     -        -     -        -        idle      closed
//	resuming   -        -     -        serving  -         closed
//	closed     -        -     -        -        -         -
//
// The callers rely on the dashes: bytes that come while a request is served or a GET is
// parked only wait (start), a closed connection parks no GET (park) and is closed once
// (close), and whatever comes late to a closed connection is dropped. The other dashes cannot
// happen: one goroutine at a time serves, and a GET parks only while one does.
func (s heldState) next(ev heldEvent) (heldState, bool) {
	switch {
	case s == heldIdle && ev == evStart:
		return heldServing, true
	case s == heldServing && ev == evWait:
		return heldIdle, true
	case s == heldServing && ev == evPark:
		return heldParking, true
	case s == heldParking && ev == evParked:
		return heldParked, true
	case s == heldParking && ev == evAnswer:
		return heldResuming, true
	case s == heldParked && ev == evAnswer:
		return heldIdle, true
	case s == heldResuming && ev == evParked:
		return heldServing, true
	case s != heldClosed && ev == evClose:
		return heldClosed, true
	}
	return s, false
}

// on moves hc on ev (hc.mu is held) and reports whether ev applied.
func (hc *heldConn) on(ev heldEvent) bool {
	var ok bool
	hc.state, ok = hc.state.next(ev)
	return ok
}
