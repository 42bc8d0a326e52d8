// Package webhook is siobridge's boundary with the web app: it tells the app what clients do,
// as signed JSON POSTs, and carries out what the app answers.
//
// Two parts:
//   - The [Deliverer] sends webhooks. Each key's (socket's) webhooks go one at a time and in
//     order, in a bounded queue per key; a fixed pool of workers delivers them, each attempt
//     straight through the http.RoundTripper, retrying with go-retryablehttp's policy and
//     backoff until an answer, [DelivererOptions].RetryFor, or the optional cap on attempts. With a spool (internal/spool), an accepted webhook survives a restart. Every
//     body is signed ([Sign], [Verify]) and carries its delivery id.
//   - The [Bridge] attaches to a socketio.Server: a client's connect, events and disconnect
//     become webhooks; the app's reply ([Actions]: an ack, emits, room changes, data, a
//     disconnect, a refusal) is read strictly (unknown keys are reported, the valid actions
//     still apply) and carried out through internal/command. Whatever is given up is logged,
//     counted ([Metrics]) and, where a client waits for an ack, answered with an error.
//
// It does not serve HTTP, read configuration files or decide the request types the app may
// send: the REST API (internal/api) and the replies share internal/command for that.
package webhook
