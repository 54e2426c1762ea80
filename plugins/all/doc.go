// Package all links every built-in plugin into the binary: one file per
// plugin, each a blank import that runs the plugin's registration.
package all
