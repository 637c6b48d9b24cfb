package shim

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// writeRuntimeLog appends one error line to runc's --log file in its
// format, as runc itself would: the engine reads the last error from it.
func writeRuntimeLog(path, format, msg string) {
	now := time.Now().UTC().Format(time.RFC3339Nano)
	var line []byte
	if format == "json" {
		line, _ = json.Marshal(map[string]string{"level": "error", "msg": msg, "time": now})
	} else {
		line = []byte(fmt.Sprintf("time=%q level=error msg=%s", now, strconv.Quote(msg)))
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	f.Write(append(line, '\n'))
}
