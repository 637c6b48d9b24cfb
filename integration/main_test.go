package integration

import (
	"os"
	"testing"

	"github.com/mooring-dev/mooring/internal/lab"
)

func TestMain(m *testing.M) { os.Exit(lab.Main(m)) }
