// Package config is siobridge's configuration: the TOML file and the SIOBRIDGE_* environment
// variables that override it, read strictly (unknown keys and wrong types are errors naming
// the key and the line, with what was perhaps meant), checked as a whole ([Config.Validate]),
// and the defaults ([Default]). docs/configuration.md lists every setting; a test holds the
// two together.
//
// It is not where the settings take effect: cmd/siobridge turns a Config into the options of
// engineio, socketio, webhook and proxy.
package config
