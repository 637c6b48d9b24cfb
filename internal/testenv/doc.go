// Package testenv gates tests on their prerequisites: locally a missing
// prerequisite skips the test with a reason; under CI=true it fails it, so
// CI never passes by skipping.
package testenv
