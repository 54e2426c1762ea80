package plugin

import (
	"context"
	"sync"
)

// RunLoop is the run lifecycle the sources share. It runs each of bg in a
// goroutine of its own and main in the caller's, all with a context that
// ends when ctx does or when main returns. A watcher calls closeAll as soon
// as ctx is cancelled (closing the source's sockets makes main return);
// done is the channel the source's Stop closes. closeAll is called again
// once main returns, so it must be idempotent; RunLoop returns when every
// goroutine has. A nil main (a source with nothing to receive, such as
// NFCT in polling mode) waits for ctx or done.
func RunLoop(ctx context.Context, done <-chan struct{}, closeAll func(), main func(ctx context.Context), bg ...func(ctx context.Context)) {
	if main == nil {
		main = func(ctx context.Context) {
			select {
			case <-ctx.Done():
			case <-done:
			}
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for _, f := range bg {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(ctx)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
			closeAll()
		case <-done:
		}
	}()
	main(ctx)
	cancel()
	closeAll()
	wg.Wait()
}
