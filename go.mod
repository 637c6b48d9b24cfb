module github.com/mooring-dev/mooring

go 1.26.8

require (
	github.com/google/uuid v1.6.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
