package volume

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestFailedAcquireKeepsAVolumeAnotherContainerUsed reproduces the race
// where a failed Acquire discarded a volume it had created although
// another container had staged it, written and stopped meanwhile.
func TestFailedAcquireKeepsAVolumeAnotherContainerUsed(t *testing.T) {
	m, k := newTestManager(t)
	// The second volume of A's request is slow: its lock is held.
	held, err := m.lockVolume(context.Background(), "default", "slow")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := m.Acquire(ctx, owner("a"), []Request{req("fresh", "/fresh"), req("slow", "/slow")})
		done <- err
	}()
	// Wait until A has created and staged "fresh" and waits for "slow".
	for {
		atts, _ := m.Attachments()
		if len(atts) == 1 && atts[0].Step == StepMounted {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("A returned early: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	// B stages the new volume, uses it and stops.
	mustAcquire(t, m, owner("b"), req("fresh", "/data"))
	mustRelease(t, m, "b")
	// A gives up on the slow volume and undoes its work.
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("A: %v, want a cancelled lock wait", err)
	}
	held.Unlock()
	rec, err := m.Volume(context.Background(), "default", "fresh")
	if err != nil || !rec.Used {
		t.Fatalf("the volume B used was discarded by A's undo: %+v %v", rec, err)
	}
	if _, err := os.Stat(rec.Backing); err != nil {
		t.Fatalf("image of the volume B used: %v", err)
	}
	assertClean(t, m, k)
}

// TestSameIDInTwoScopesIsTwoOwners: container ids are unique only per
// runtime root; two containers "same" in two roots share a volume, and
// releasing one keeps the other's claim and mount.
func TestSameIDInTwoScopesIsTwoOwners(t *testing.T) {
	m, k := newTestManager(t)
	a := Owner{ID: "same", Scope: "/run/runc-a", Tenant: "default", Frontend: "shim"}
	b := Owner{ID: "same", Scope: "/run/runc-b", Tenant: "default", Frontend: "shim"}
	mustAcquire(t, m, a, req("shared", "/s"))
	mustAcquire(t, m, b, req("shared", "/s"))
	if atts, _ := m.Attachments(); len(atts) != 2 {
		t.Fatalf("attachments = %+v, want two claims", atts)
	}
	if err := m.Release(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	atts, _ := m.Attachments()
	if len(atts) != 1 || !atts[0].Owner.SameAs(b) || k.MountCount() != 1 {
		t.Fatalf("after releasing a: attachments %+v, %d mounts; want b's claim and its mount", atts, k.MountCount())
	}
	// The same id under another front-end is another owner too.
	if err := m.Release(context.Background(), Owner{ID: "same", Scope: "/run/runc-b", Frontend: "hook"}); err != nil {
		t.Fatal(err)
	}
	if atts, _ := m.Attachments(); len(atts) != 1 {
		t.Fatalf("a hook release took the shim's claim: %+v", atts)
	}
	if err := m.Release(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	assertClean(t, m, k)
}

// TestReconcileRechecksLivenessUnderTheLock: an owner judged dead when
// the claims were listed but alive when its claim is locked keeps it.
func TestReconcileRechecksLivenessUnderTheLock(t *testing.T) {
	m, k := newTestManager(t)
	mustAcquire(t, m, owner("late"), req("v", "/v"))
	asked := 0
	rep, err := m.Reconcile(context.Background(), func(o Owner) bool {
		asked++
		return asked > 1 // dead at listing, alive under the lock
	})
	if err != nil || len(rep.Released) != 0 || rep.Kept != 1 || k.MountCount() != 1 {
		t.Fatalf("report %+v %v, mounts %d: the live owner lost its claim", rep, err, k.MountCount())
	}
	mustRelease(t, m, "late")
	assertClean(t, m, k)
}

// TestJournalSkipsCorruptAndStrayEntries: one bad file must not stop
// every Release, Reconcile and listing on the host, and record ids never
// become paths unchecked.
func TestJournalSkipsCorruptAndStrayEntries(t *testing.T) {
	m, k := newTestManager(t)
	st := mustAcquire(t, m, owner("c"), req("v", "/v"))
	state := m.cfg.StateDir
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(state, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("attachments/"+st[0].VolumeID+"/torn.json", `{"owner":`)
	write("attachments/"+st[0].VolumeID+"/wrong-volume.json", `{"owner":{"id":"x","frontend":"test"},"volumeID":"v0000000000000000","volume":"default/v"}`)
	write("attachments/"+st[0].VolumeID+"/bad-owner.json", `{"owner":{"id":"../../x","frontend":"test"},"volumeID":"`+st[0].VolumeID+`","volume":"default/v"}`)
	write("attachments/stray-file", "x")
	write("attachments/../../escape/x.json", "{}")
	write("volumes/default/torn.json", `{"id":`)
	write("volumes/default/evil.json", `{"id":"../../../etc","tenant":"default","name":"evil"}`)
	write("volumes/stray-file", "x")

	vols, err := m.Volumes(context.Background())
	if err != nil || len(vols) != 1 || vols[0].Name != "v" {
		t.Fatalf("Volumes = %+v, %v; want only v", vols, err)
	}
	atts, err := m.Attachments()
	if err != nil || len(atts) != 1 || !atts[0].Owner.SameAs(owner("c")) {
		t.Fatalf("Attachments = %+v, %v; want only c's claim", atts, err)
	}
	if _, err := m.Volume(context.Background(), "default", "evil"); err == nil {
		t.Fatal("a volume record with a path for an id was accepted")
	}
	if _, err := m.Reconcile(context.Background(), func(Owner) bool { return true }); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	mustRelease(t, m, "c")
	assertClean(t, m, k)
}

// TestLegacyClaimIsReleased: a claim written before owners had scopes
// (named by the container id alone) is still found and removed.
func TestLegacyClaimIsReleased(t *testing.T) {
	m, k := newTestManager(t)
	st := mustAcquire(t, m, owner("old"), req("v", "/v"))
	dir := m.j.attachmentDir(st[0].VolumeID)
	if err := os.Rename(filepath.Join(dir, owner("old").fileName()), filepath.Join(dir, "old.json")); err != nil {
		t.Fatal(err)
	}
	mustRelease(t, m, "old")
	assertClean(t, m, k)
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("legacy record left: %v", entries)
	}
}

func TestUpdateOwnerRecordsTheContainerProcess(t *testing.T) {
	m, k := newTestManager(t)
	o := owner("c")
	o.PID = 1
	mustAcquire(t, m, o, req("a", "/a"), req("b", "/b"))
	start, err := ProcessStart(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	o.PID, o.PIDStart, o.StatePath = os.Getpid(), start, "/run/x/c"
	if err := m.UpdateOwner(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	atts, _ := m.Attachments()
	for _, a := range atts {
		if a.Owner.PID != o.PID || a.Owner.PIDStart != start || a.Owner.StatePath != "/run/x/c" {
			t.Errorf("claim on %s has owner %+v", a.Volume, a.Owner)
		}
	}
	if len(atts) != 2 {
		t.Fatalf("%d claims, want 2", len(atts))
	}
	mustRelease(t, m, "c")
	assertClean(t, m, k)
}

// TestReleaseExitedKeepsTheRunningSameID: a poststop that cannot know the
// runtime root releases the exited container's claim, not the claim of a
// running container with the same id in another root.
func TestReleaseExitedKeepsTheRunningSameID(t *testing.T) {
	m, k := newTestManager(t)
	start, err := ProcessStart(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	running := Owner{ID: "same", Scope: "/run/a", Tenant: "default", Frontend: "hook", PID: os.Getpid(), PIDStart: start}
	exited := Owner{ID: "same", Scope: "/run/b", Tenant: "default", Frontend: "hook", PID: os.Getpid(), PIDStart: start + 1}
	mustAcquire(t, m, running, req("v", "/v"))
	mustAcquire(t, m, exited, req("v", "/v"))
	if err := m.ReleaseExited(context.Background(), Owner{ID: "same", Frontend: "hook"}); err != nil {
		t.Fatal(err)
	}
	atts, _ := m.Attachments()
	if len(atts) != 1 || !atts[0].Owner.SameAs(running) || k.MountCount() != 1 {
		t.Fatalf("claims %+v: want only the running container's", atts)
	}
	if err := m.Release(context.Background(), running); err != nil {
		t.Fatal(err)
	}
	assertClean(t, m, k)
}
