module github.com/mooring-dev/mooring

go 1.26.8

require golang.org/x/sys v0.50.0 // indirect
