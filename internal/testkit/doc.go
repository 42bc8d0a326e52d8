// Package testkit holds what the tests of several packages share, so that each test says only
// what it checks. Only tests import it.
//
//   - Waiting: Recv takes a value from a channel within a bound; Poll waits for state that
//     nothing announces. Problems collects what a test's own servers find wrong on their
//     goroutines, and fails the test with it at the end.
//   - HTTP: Fetch and Do send a request and read the whole answer; Scrape reads metrics.
//   - The tools the interop and end-to-end tests run: RequireTool, RequirePython and
//     RequireNodeModules fail the test with one line naming what to install when node,
//     redis-server, chromium, nginx, Debian's python3 with its modules, or a fixture's
//     node_modules is missing. Those tests fail rather than skip, in CI too.
//   - Child processes: Start runs one with a clean environment (Env), keeps what it writes
//     (Lines, which also serves as a log destination), stops it at the test's end and shows
//     its output when the test failed. Binary builds cmd/siobridge once per test binary,
//     StartSiobridge runs it and waits until it serves, StartRedis runs a redis-server of the
//     test's own (Kill and Restart are a crash and a recovery), and StartNodeServer runs the
//     Node.js Socket.IO server of socketio/redisadapter/testdata/node (RequireNodeServer checks
//     what it needs before a test starts anything).
//   - A browser: StartBrowser runs headless Chromium with a fresh profile for chromedp.
//
// It is not a framework: each helper does one thing, and a test that needs another way of
// running a process builds on Start.
package testkit
