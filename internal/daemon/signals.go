package daemon

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// ReloadSignal makes the daemon apply a changed configuration file
// (systemctl reload). SIGHUP keeps ulogd2's meaning, reopening the files;
// SIGWINCH is free in ulogd2, and its default action is to ignore it, so
// sending it to a ulogd2 or an older ulogd-go does no harm.
const ReloadSignal = syscall.SIGWINCH

// Signals delivers the signals ulogd reacts to: SIGHUP, SIGUSR1, SIGUSR2,
// SIGALRM, SIGTERM and SIGINT, and ReloadSignal. It is the only signal.Notify in the program;
// the main loop reads C between events, which is ulogd's self-pipe design.
type Signals struct {
	C <-chan os.Signal
}

// handled lists the signals in NotifySignals.
func handled() []os.Signal {
	return []os.Signal{
		syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2,
		syscall.SIGALRM, syscall.SIGTERM, syscall.SIGINT, ReloadSignal,
	}
}

// NotifySignals starts delivery and returns the function that stops it
// (restoring the default actions); stop may be called more than once. The
// channel is buffered, so a burst of signals is not lost while an event is
// processed; identical pending signals may be coalesced by the kernel.
func NotifySignals() (*Signals, func()) {
	ch := make(chan os.Signal, 32)
	signal.Notify(ch, handled()...)
	var once sync.Once
	return &Signals{C: ch}, func() { once.Do(func() { signal.Stop(ch) }) }
}

// IsTerminal reports whether sig ends the daemon (SIGTERM, SIGINT).
func IsTerminal(sig os.Signal) bool {
	return sig == syscall.SIGTERM || sig == syscall.SIGINT
}
