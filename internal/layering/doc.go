// Package layering holds the test that keeps the package map of
// docs/design.md true: each package imports only packages of its own
// layer or of the layers below it.
package layering
