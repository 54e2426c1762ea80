package plugin

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
)

// TestRunLoop: cancelling ctx calls closeAll, which ends main; background
// goroutines end with the context; RunLoop returns after all of them.
func TestRunLoop(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var once sync.Once
	var closes, bgDone atomic.Int32
	closeAll := func() {
		closes.Add(1)
		once.Do(func() { close(done) })
	}
	started := make(chan struct{})
	main := func(context.Context) {
		close(started)
		<-done // a receive loop ends when its socket is closed
	}
	bg := func(ctx context.Context) {
		<-ctx.Done()
		bgDone.Add(1)
	}
	returned := make(chan struct{})
	go func() {
		RunLoop(ctx, done, closeAll, main, bg, bg)
		close(returned)
	}()
	<-started
	cancel()
	<-returned
	if got := bgDone.Load(); got != 2 {
		t.Errorf("%d background goroutines ended before RunLoop returned, want 2", got)
	}
	if closes.Load() < 1 {
		t.Error("closeAll was never called")
	}
}

// TestRunLoopMainReturns: when main returns on its own (Stop closed the
// socket), the background goroutines are cancelled too.
func TestRunLoopMainReturns(t *testing.T) {
	done := make(chan struct{})
	var bgDone atomic.Bool
	RunLoop(context.Background(), done, func() {}, func(context.Context) {},
		func(ctx context.Context) { <-ctx.Done(); bgDone.Store(true) })
	if !bgDone.Load() {
		t.Error("background goroutine still running after RunLoop returned")
	}
}

// TestRunLoopNilMain: with nothing to receive, RunLoop waits until done is
// closed (Stop), then ends the background goroutines.
func TestRunLoopNilMain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		done := make(chan struct{})
		var bgDone, returned atomic.Bool
		go func() {
			RunLoop(context.Background(), done, func() {}, nil,
				func(ctx context.Context) { <-ctx.Done(); bgDone.Store(true) })
			returned.Store(true)
		}()
		synctest.Wait() // every goroutine is blocked: RunLoop waits
		if returned.Load() {
			t.Fatal("RunLoop returned before done was closed")
		}
		close(done)
		synctest.Wait()
		if !returned.Load() || !bgDone.Load() {
			t.Errorf("after done: RunLoop returned %v, background goroutine ended %v; want both", returned.Load(), bgDone.Load())
		}
	})
}
