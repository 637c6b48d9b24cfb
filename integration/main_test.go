package integration

import (
	"os"
	"testing"

	"github.com/mooring-dev/mooring/internal/lab"
)

func TestMain(m *testing.M) {
	code := lab.Main(m)
	printGoals(os.Stdout)
	os.Exit(code)
}
