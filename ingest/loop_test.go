package ingest

import (
	"context"
	"os"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestSettleWindow checks the settle loop under a fake clock: a batch
// starts only when no upload completed for the window; repeats collapse.
func TestSettleWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var batches [][]string
		var at []time.Duration
		start := time.Now()
		l := newOrgLoop("acme", &Pipeline{})
		l.settle = func() time.Duration { return 10 * time.Second }
		l.stat = func(string) (os.FileInfo, error) { return nil, os.ErrNotExist }
		l.process = func(_ context.Context, files []pendingFile) {
			mu.Lock()
			defer mu.Unlock()
			var names []string
			for _, f := range files {
				names = append(names, f.name)
			}
			batches = append(batches, names)
			at = append(at, time.Since(start))
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { l.run(ctx); close(done) }()

		l.add("users.csv", true)
		time.Sleep(6 * time.Second)
		l.add("user_groups.csv", true) // restarts the window
		l.add("users.csv", true)       // a repeat collapses
		time.Sleep(9 * time.Second)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if len(batches) != 0 {
			t.Fatalf("batch after 15s with an upload at 6s: %v", batches)
		}
		mu.Unlock()
		time.Sleep(2 * time.Second)
		synctest.Wait()
		mu.Lock()
		if len(batches) != 1 || len(batches[0]) != 2 || at[0] != 16*time.Second {
			t.Fatalf("batches = %v at %v; want one of 2 files at 16s", batches, at)
		}
		// A file the watcher reports that is gone is dropped.
		mu.Unlock()
		l.add("groups.csv", false)
		time.Sleep(time.Minute)
		synctest.Wait()
		mu.Lock()
		if len(batches) != 1 {
			t.Fatalf("a vanished file made a batch: %v", batches)
		}
		cancel()
		<-done
	})
}
