// Package mysql is the MYSQL sink (ulogd2's ulogd_output_MYSQL.so): the
// shared SQL layer (internal/sqldb: column discovery, queue, reconnect,
// per-row error isolation) writing to MariaDB or MySQL through
// go-sql-driver/mysql, with several rows per statement (multi-row INSERT,
// or SELECT f(...),f(...) / CALL p(...);CALL p(...) in one transaction).
package mysql

import (
	_ "embed"
	"strings"
	"time"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/sqldb"
)

// Config holds MYSQL's options: the db layer's and the server's.
type Config struct {
	sqldb.Options
	DB   string `ulogd:"db,mandatory"`
	Host string `ulogd:"host,mandatory"`
	User string `ulogd:"user,mandatory"`
	Pass string `ulogd:"pass,mandatory"`
	Port int    `ulogd:"port"`
}

func newConfig() *Config { return &Config{Options: sqldb.DefaultOptions()} }

// Params returns where cfg connects.
func (c *Config) Params() Params {
	return Params{Host: c.Host, Port: c.Port, User: c.User, Pass: c.Pass, DB: c.DB,
		ConnectTimeout: time.Duration(c.ConnectTimeout) * time.Second}
}

// check validates the option values (Keys: also for the defaults).
func (c *Config) check() error {
	if _, err := c.Options.Check(); err != nil {
		return err
	}
	if c.Port < 0 || c.Port > 65535 {
		return config.OptionErrorf("port", "option `port': %d is not a port number", c.Port)
	}
	return nil
}

// checkNames also requires what an instance must name.
func (c *Config) checkNames() error {
	if err := c.check(); err != nil {
		return err
	}
	if err := c.Options.CheckNames(); err != nil {
		return err
	}
	if strings.TrimSpace(c.DB) == "" {
		return config.OptionErrorf("db", "option `db' is empty")
	}
	return nil
}

//go:embed sample.conf
var sample string

func init() { plugin.Register(Descriptor()) }

// options documents MYSQL's options.
func options() map[string]string {
	o := sqldb.OptionDocs()
	o["db"] = "database name"
	o["host"] = "server: `localhost` (or empty) is the unix socket (`$MYSQL_UNIX_PORT`, else `/run/mysqld/mysqld.sock`), anything else a host name or address for TCP"
	o["user"] = "user name"
	o["pass"] = "password"
	o["port"] = "TCP port (`0`: `$MYSQL_TCP_PORT`, else 3306); not used with the unix socket"
	return o
}

// Descriptor returns the MYSQL plugin's descriptor.
func Descriptor() *plugin.Descriptor {
	return plugin.Define(plugin.Def[Config]{
		Name:      "MYSQL",
		Kind:      plugin.Sink,
		Summary:   "write rows into a MariaDB/MySQL table, view or stored function, batched, never blocking the source",
		Input:     plugin.DTPacket | plugin.DTFlow,
		Output:    plugin.DTSink,
		Wildcard:  true,
		NewConfig: newConfig,
		Options:   options(),
		Sample:    sample,
		Keys:      keysOf,
		Resources: func(cfg *Config) []string { return cfg.Options.Resources() },
		New:       newSink,
	})
}

func keysOf(cfg *Config) ([]keys.Spec, []keys.Spec, error) { return nil, nil, cfg.check() }

// sink is one MYSQL instance: the shared SQL sink with this driver.
type sink struct {
	*sqldb.Sink
}

func newSink(env *plugin.Env, cfg *Config) (plugin.Instance, error) {
	if err := cfg.checkNames(); err != nil {
		return nil, err
	}
	d, err := NewDriver(cfg.Params(), cfg.Table, cfg.Procedure, false)
	if err != nil {
		return nil, err
	}
	return NewInstance(env, "MYSQL", cfg.Options, sqldb.IDFirst, d), nil
}

// NewInstance returns a SQL sink instance of plugin name writing through
// d (MYSQL, and DBI for every dbtype); it logs the option values ulogd2
// corrects.
func NewInstance(env *plugin.Env, name string, opts sqldb.Options, id sqldb.IDColumn, d sqldb.Driver) plugin.Instance {
	warnings, _ := opts.Check()
	for _, w := range warnings {
		env.Logger().Error(name + ": " + w)
	}
	return &sink{Sink: sqldb.NewSink(env, sqldb.SinkConfig{Name: name, Options: opts, IDRule: id, Driver: d})}
}
