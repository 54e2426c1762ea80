package daemon

import (
	"os"
	"syscall"
	"testing"
	"time"
)

func TestNotifySignals(t *testing.T) {
	sigs, stop := NotifySignals()
	defer stop()
	for _, sig := range []syscall.Signal{
		syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGALRM, syscall.SIGTERM, syscall.SIGINT, ReloadSignal,
	} {
		if err := syscall.Kill(os.Getpid(), sig); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-sigs.C:
			if got != sig {
				t.Errorf("sent %v, received %v", sig, got)
			}
			if IsTerminal(got) != (sig == syscall.SIGTERM || sig == syscall.SIGINT) {
				t.Errorf("IsTerminal(%v) = %v", got, IsTerminal(got))
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%v not delivered", sig)
		}
	}
	stop()
	stop() // idempotent
}

func TestIsTerminal(t *testing.T) {
	for sig, want := range map[os.Signal]bool{
		syscall.SIGTERM: true, os.Interrupt: true, syscall.SIGHUP: false,
		syscall.SIGUSR1: false, syscall.SIGUSR2: false, syscall.SIGALRM: false, ReloadSignal: false,
	} {
		if got := IsTerminal(sig); got != want {
			t.Errorf("IsTerminal(%v) = %v", sig, got)
		}
	}
}
