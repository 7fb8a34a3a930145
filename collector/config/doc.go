// Package config loads and validates the exporter's configuration file: the
// declared connection pools, each matched by process and remote endpoint.
// Errors name the file, the line, the pool and the field.
package config
