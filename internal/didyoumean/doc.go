// Package didyoumean finds, among known names, the ones a mistyped name was meant to be.
//
// It does not know where the names come from: the configuration and the webhook replies give
// them.
package didyoumean
