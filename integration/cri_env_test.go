package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/internal/lab"
)

// criEnv is a CRI runtime (containerd or CRI-O) driven by the harness's CRI
// client as the kubelet would, with mooring serving its pods either as an
// NRI plugin or through the runtime's hooks.d. The scenarios in
// cri_scenarios_test.go run against any of them.
type criEnv struct {
	t         testing.TB
	scratch   *lab.Scratch
	bins      lab.Bins
	cri       *lab.CRI
	engineLog func() string
	// nriSocket is the runtime's NRI socket, "" on the hooks.d path.
	nriSocket string
	// pluginArgs are more mooring-nri options (e.g. --request-timeout).
	pluginArgs []string
	plugin     *exec.Cmd
	exited     chan struct{}
	// ctrd is the containerd of the containerd setups (nil for CRI-O).
	ctrd *lab.Containerd
}

// criSetup is one runtime and one way of serving it.
type criSetup struct {
	name string
	// start starts the runtime and sets e.cri, e.engineLog and, for NRI,
	// e.nriSocket.
	start func(e *criEnv)
}

var (
	containerdNRI = criSetup{"containerd-nri", func(e *criEnv) {
		e.ctrd = lab.NewContainerd(e.t, lab.ContainerdOptions{})
		e.cri, e.engineLog, e.nriSocket = e.ctrd.CRI(), e.ctrd.Log, e.ctrd.NRISocket
	}}
	crioNRI = criSetup{"crio-nri", func(e *criEnv) {
		c := lab.NewCRIO(e.t, lab.CRIOOptions{NRI: true})
		e.cri, e.engineLog, e.nriSocket = c.CRI(), c.Log, c.NRISocket
	}}
	crioHooks = criSetup{"crio-hooks", func(e *criEnv) {
		c := lab.NewCRIO(e.t, lab.CRIOOptions{HooksDir: lab.WriteHooksDir(e.t, e.bins.Mooring, e.scratch)})
		e.cri, e.engineLog = c.CRI(), c.Log
	}}
	nriSetups = []criSetup{containerdNRI, crioNRI}
)

// newCRIEnv starts the runtime of setup and, on the NRI path, mooring-nri.
func newCRIEnv(t testing.TB, setup criSetup) *criEnv {
	t.Helper()
	e := &criEnv{t: t, bins: lab.Binaries(t)}
	e.scratch = lab.NewScratch(t)
	setup.start(e)
	if e.nriSocket != "" {
		if e.bins.NRI == "" {
			t.Fatal("cmd/mooring-nri was not built")
		}
		e.startPlugin()
	}
	return e
}

// eachSetup runs scenario once per setup, as subtests named after them.
func eachSetup(t *testing.T, setups []criSetup, scenario func(e *criEnv)) {
	for _, s := range setups {
		t.Run(s.name, func(t *testing.T) { scenario(newCRIEnv(t, s)) })
	}
}

// startPlugin starts mooring-nri and waits until it has synchronized with
// the runtime.
func (e *criEnv) startPlugin() {
	t := e.t
	log, err := os.OpenFile(filepath.Join(e.scratch.Dir, "nri.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(e.bins.NRI, append([]string{"--config", e.scratch.ConfigPath, "--socket", e.nriSocket, "--idx", "10"}, e.pluginArgs...)...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e.plugin, e.exited = cmd, make(chan struct{})
	exited := e.exited
	go func() { cmd.Wait(); log.Close(); close(exited) }()
	t.Cleanup(e.stopPlugin)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(e.pluginLog(), `"msg":"synchronized"`) {
		if time.Now().After(deadline) {
			t.Fatalf("mooring-nri did not synchronize:\n%s\nruntime log:\n%s", e.pluginLog(), e.engineLog())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stopPlugin stops mooring-nri by its PID; kill means SIGKILL.
func (e *criEnv) stopPlugin() { e.signalPlugin(syscall.SIGTERM) }

func (e *criEnv) signalPlugin(sig syscall.Signal) {
	select {
	case <-e.exited:
		return
	default:
	}
	e.plugin.Process.Signal(sig)
	<-e.exited
}

func (e *criEnv) pluginLog() string {
	b, _ := os.ReadFile(filepath.Join(e.scratch.Dir, "nri.log"))
	return string(b)
}

// logs is what a failure message shows: mooring's logs and the runtime's.
func (e *criEnv) logs() string {
	return "mooring log:\n" + e.scratch.Log() + "\nmooring-nri log:\n" + e.pluginLog() + "\nruntime log:\n" + e.engineLog()
}

// run runs one container to completion in pod and returns its exit code.
func (e *criEnv) run(p *lab.Pod, name, script string) int32 {
	e.t.Helper()
	code, err := e.cri.RunContainer(p, name, "sh", "-c", script)
	if err != nil {
		e.t.Fatalf("container %s: %v\n%s", name, err, e.logs())
	}
	return code
}

// start starts a long-running container in pod.
func (e *criEnv) start(p *lab.Pod, name, script string) string {
	e.t.Helper()
	id, err := e.cri.CreateContainer(p, name, "sh", "-c", script)
	if err == nil {
		err = e.cri.Start(id)
	}
	if err != nil {
		e.t.Fatalf("container %s: %v\n%s", name, err, e.logs())
	}
	return id
}

func (e *criEnv) pod(ns, name string, ann map[string]string) *lab.Pod {
	e.t.Helper()
	p, err := e.cri.RunPod(ns, name, ann)
	if err != nil {
		e.t.Fatalf("RunPodSandbox: %v\n%s", err, e.engineLog())
	}
	return p
}

func (e *criEnv) removePod(p *lab.Pod) {
	e.t.Helper()
	if err := e.cri.RemovePod(p); err != nil {
		e.t.Fatal(err)
	}
}
