// Package socketiotest provides raw Socket.IO test clients, as net/http/httptest provides
// test servers: they speak Engine.IO v4 over one WebSocket ([Client]) or HTTP long-polling
// ([Polling]) and let a test write and read Socket.IO packets as the text on the wire
// ("42[\"event\",1]"), so tests assert on exactly what a server sends. Pings are answered
// as they come.
//
// They are for tests only, and not a Socket.IO client: they do not reconnect, answer acks or
// decode packets (beyond the socket id Connect returns); a test does that in its assertions.
package socketiotest
