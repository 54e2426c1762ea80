// Package daemon is ulogd-go's process: Run loads the configuration, builds
// and starts the stacks, serves the metrics endpoint, handles signals,
// reopens files, reloads the configuration, logs counters, tells systemd
// it is ready and stops cleanly; around it are the process
// chores it needs: the daemon's own log, the pid file, signal delivery,
// privilege drop, daemonization and systemd readiness notification.
// Plugins never use this package; they receive a *slog.Logger.
package daemon
