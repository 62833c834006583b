// Package apply puts a rendered configuration on disk safely: it compares with
// what is there, validates the candidate, and replaces the file atomically so a
// crash at any point leaves either the old or the new file, never a partial one.
package apply
