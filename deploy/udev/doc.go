// Package udev holds the udev rule that keeps udev away from mooring's
// loop devices (10-mooring-loop.rules, installed by `make install`), and
// the tests that check its syntax and what it matches without a running
// udev. There is no Go code to import here.
package udev
