package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CRI is a small Kubernetes CRI client (what the kubelet does), enough to
// run pods and containers against a test containerd.
type CRI struct {
	conn *grpc.ClientConn
	rt   cri.RuntimeServiceClient
	// LogDir holds the pods' container logs.
	LogDir string
	// Image is the image containers run (default BusyboxImage).
	Image string
}

// DialCRI connects to a CRI socket.
func DialCRI(socket string) (*CRI, error) {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	return &CRI{conn: conn, rt: cri.NewRuntimeServiceClient(conn), Image: BusyboxImage}, nil
}

// dialTestCRI connects to a test engine's CRI socket; pods' logs go to
// logDir. The test's cleanup closes the connection.
func dialTestCRI(tb testing.TB, socket, logDir string) *CRI {
	tb.Helper()
	client, err := DialCRI(socket)
	if err != nil {
		tb.Fatal(err)
	}
	client.LogDir = logDir
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { client.Close() })
	return client
}

// removeAllPods removes every pod of the engine at socket (cleanup).
func removeAllPods(socket string) {
	if c, err := DialCRI(socket); err == nil {
		c.RemoveAllPods()
		c.Close()
	}
}

// Close closes the connection.
func (c *CRI) Close() error { return c.conn.Close() }

func ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), time.Minute)
}

// Pod is a running pod sandbox.
type Pod struct {
	ID     string
	Config *cri.PodSandboxConfig
}

// RunPod starts a pod with host networking (no CNI here) and annotations,
// each container in its own PID namespace as the kubelet asks by default
// (CRI-O then runs no pause container).
func (c *CRI) RunPod(namespace, name string, annotations map[string]string) (*Pod, error) {
	cfg := &cri.PodSandboxConfig{
		Metadata:     &cri.PodSandboxMetadata{Name: name, Namespace: namespace, Uid: namespace + "-" + name},
		Annotations:  annotations,
		Labels:       podLabels(namespace, name),
		LogDirectory: c.LogDir,
		Linux: &cri.LinuxPodSandboxConfig{SecurityContext: &cri.LinuxSandboxSecurityContext{
			NamespaceOptions: &cri.NamespaceOption{Network: cri.NamespaceMode_NODE, Pid: cri.NamespaceMode_CONTAINER},
		}},
	}
	cx, cancel := ctx()
	defer cancel()
	resp, err := c.rt.RunPodSandbox(cx, &cri.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		return nil, err
	}
	return &Pod{ID: resp.PodSandboxId, Config: cfg}, nil
}

// podLabels are the labels the kubelet puts on a pod sandbox.
func podLabels(namespace, name string) map[string]string {
	return map[string]string{
		"io.kubernetes.pod.namespace": namespace,
		"io.kubernetes.pod.name":      name,
		"io.kubernetes.pod.uid":       namespace + "-" + name,
	}
}

// containerLabels are the labels the kubelet puts on a container (CRI-O
// copies them into the OCI spec's annotations).
func containerLabels(p *Pod, name string) map[string]string {
	l := podLabels(p.Config.Metadata.Namespace, p.Config.Metadata.Name)
	l["io.kubernetes.container.name"] = name
	return l
}

// CreateContainer creates (not starts) a container of c.Image in the pod.
func (c *CRI) CreateContainer(p *Pod, name string, args ...string) (string, error) {
	return c.CreateContainerFrom(p, c.Image, name, args...)
}

// CreateContainerFrom creates (not starts) a container of image in the pod.
func (c *CRI) CreateContainerFrom(p *Pod, image, name string, args ...string) (string, error) {
	cx, cancel := ctx()
	defer cancel()
	resp, err := c.rt.CreateContainer(cx, &cri.CreateContainerRequest{
		PodSandboxId: p.ID, SandboxConfig: p.Config,
		Config: &cri.ContainerConfig{
			Metadata: &cri.ContainerMetadata{Name: name},
			Labels:   containerLabels(p, name),
			Image:    &cri.ImageSpec{Image: image, UserSpecifiedImage: image},
			Command:  args,
			LogPath:  name + ".log",
			Linux: &cri.LinuxContainerConfig{SecurityContext: &cri.LinuxContainerSecurityContext{
				NamespaceOptions: p.Config.Linux.SecurityContext.NamespaceOptions,
			}},
		},
	})
	if err != nil {
		return "", err
	}
	return resp.ContainerId, nil
}

// Start starts a created container.
func (c *CRI) Start(id string) error {
	cx, cancel := ctx()
	defer cancel()
	_, err := c.rt.StartContainer(cx, &cri.StartContainerRequest{ContainerId: id})
	return err
}

// RunContainer creates and starts a container and waits for it to exit;
// it returns the exit code.
func (c *CRI) RunContainer(p *Pod, name string, args ...string) (int32, error) {
	id, err := c.CreateContainer(p, name, args...)
	if err != nil {
		return -1, err
	}
	if err := c.Start(id); err != nil {
		return -1, err
	}
	return c.Wait(id)
}

// Wait waits up to a minute for a container to exit.
func (c *CRI) Wait(id string) (int32, error) {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		cx, cancel := ctx()
		st, err := c.rt.ContainerStatus(cx, &cri.ContainerStatusRequest{ContainerId: id})
		cancel()
		if err != nil {
			return -1, err
		}
		if st.Status.State == cri.ContainerState_CONTAINER_EXITED {
			return st.Status.ExitCode, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return -1, fmt.Errorf("container %s did not exit within a minute", id)
}

// RemovePod stops and removes a pod and its containers.
func (c *CRI) RemovePod(p *Pod) error {
	cx, cancel := ctx()
	defer cancel()
	if _, err := c.rt.StopPodSandbox(cx, &cri.StopPodSandboxRequest{PodSandboxId: p.ID}); err != nil {
		return err
	}
	_, err := c.rt.RemovePodSandbox(cx, &cri.RemovePodSandboxRequest{PodSandboxId: p.ID})
	return err
}

// RemoveAllPods removes every pod (test cleanup).
func (c *CRI) RemoveAllPods() {
	cx, cancel := ctx()
	defer cancel()
	resp, err := c.rt.ListPodSandbox(cx, &cri.ListPodSandboxRequest{})
	if err != nil {
		return
	}
	for _, p := range resp.Items {
		c.rt.StopPodSandbox(cx, &cri.StopPodSandboxRequest{PodSandboxId: p.Id})
		c.rt.RemovePodSandbox(cx, &cri.RemovePodSandboxRequest{PodSandboxId: p.Id})
	}
}

// RemoveContainer stops and removes one container.
func (c *CRI) RemoveContainer(id string) error {
	cx, cancel := ctx()
	defer cancel()
	if _, err := c.rt.StopContainer(cx, &cri.StopContainerRequest{ContainerId: id}); err != nil {
		return err
	}
	_, err := c.rt.RemoveContainer(cx, &cri.RemoveContainerRequest{ContainerId: id})
	return err
}

// Containers lists the containers whose labels include labels (the
// kubelet labels each with io.kubernetes.pod.name and
// io.kubernetes.container.name).
func (c *CRI) Containers(labels map[string]string) ([]*cri.Container, error) {
	cx, cancel := ctx()
	defer cancel()
	resp, err := c.rt.ListContainers(cx, &cri.ListContainersRequest{Filter: &cri.ContainerFilter{LabelSelector: labels}})
	if err != nil {
		return nil, err
	}
	return resp.Containers, nil
}

// Exec runs a command in a running container and returns its stdout and
// exit code.
func (c *CRI) Exec(id string, argv ...string) (string, int32, error) {
	cx, cancel := ctx()
	defer cancel()
	resp, err := c.rt.ExecSync(cx, &cri.ExecSyncRequest{ContainerId: id, Cmd: argv, Timeout: 30})
	if err != nil {
		return "", -1, err
	}
	return string(resp.Stdout), resp.ExitCode, nil
}

// PID returns the host PID of a running container's first process, from
// the runtime's verbose status (containerd's "info").
func (c *CRI) PID(id string) (int, error) {
	cx, cancel := ctx()
	defer cancel()
	resp, err := c.rt.ContainerStatus(cx, &cri.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		return 0, err
	}
	var info struct{ Pid int }
	if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil || info.Pid == 0 {
		return 0, fmt.Errorf("container %s: no pid in the verbose status (%v)", id, err)
	}
	return info.Pid, nil
}
