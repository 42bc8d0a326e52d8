// Package spool is siobridge's write-ahead log of webhooks: a deliverer appends each webhook
// before it counts as accepted and marks it done once settled, so that what a crash or a
// shutdown's deadline leaves undelivered is delivered by the next run ([Spool.TakeReplay]),
// in order, with the same id and body. Segment files, records framed by a length and a
// CRC-32C, compaction, one process per directory, and the fsync policies are its concern.
//
// It is not the delivery: webhook.Deliverer decides what to append and when a webhook is
// settled.
package spool
