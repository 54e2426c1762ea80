// Package dbi is the DBI sink (ulogd2's ulogd_output_DBI.so, which writes
// through libdbi): the shared SQL layer (internal/sqldb) with the driver
// dbtype names: pgsql and mysql are written as PGSQL and MYSQL write them,
// sqlite3 with SQL text into an SQLite file. As in ulogd2, column names
// are folded to lower case and the first column is always the row id.
package dbi

import (
	_ "embed"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/sqldb"
	"github.com/ulogd-go/ulogd/plugins/output/mysql"
)

// Config holds DBI's options: the db layer's and libdbi's.
type Config struct {
	sqldb.Options
	DB     string `ulogd:"db,mandatory"`
	Host   string `ulogd:"host"`
	User   string `ulogd:"user,mandatory"`
	Pass   string `ulogd:"pass"`
	Port   int    `ulogd:"port"`
	Schema string `ulogd:"schema"`
	DBType string `ulogd:"dbtype,mandatory"`
}

func newConfig() *Config { return &Config{Options: sqldb.DefaultOptions()} }

// DBTypes are the dbtype values DBI accepts.
var DBTypes = []string{"pgsql", "mysql", "sqlite3"}

// SQLiteDir is where a relative sqlite3 db lives: libdbi's sqlite3
// driver's compiled-in directory (ulogd2 never sets sqlite3_dbdir).
const SQLiteDir = "/var/lib/libdbi/sqlite3"

// check validates the option values (Keys: also for the defaults).
func (c *Config) check() error {
	if _, err := c.Options.Check(); err != nil {
		return err
	}
	if c.DBType != "" && !slices.Contains(DBTypes, c.DBType) {
		return config.OptionErrorf("dbtype", "option `dbtype': %q is not one of %s", c.DBType, strings.Join(DBTypes, ", "))
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
	if c.DBType == "" {
		return config.OptionErrorf("dbtype", "option `dbtype' is empty: one of %s", strings.Join(DBTypes, ", "))
	}
	if strings.TrimSpace(c.DB) == "" {
		return config.OptionErrorf("db", "option `db' is empty")
	}
	return nil
}

// SQLitePath is the file a sqlite3 db names.
func (c *Config) SQLitePath() string {
	if filepath.IsAbs(c.DB) {
		return c.DB
	}
	return filepath.Join(SQLiteDir, c.DB)
}

//go:embed sample.conf
var sample string

func init() { plugin.Register(Descriptor()) }

func options() map[string]string {
	o := sqldb.OptionDocs()
	o["db"] = "database name; for `sqlite3` the file (relative: under `" + SQLiteDir + "`)"
	o["host"] = "server, as for PGSQL or MYSQL (`mysql`: `localhost` is the unix socket)"
	o["user"] = "user name"
	o["pass"] = "password"
	o["port"] = "server port (`0`: the driver's default)"
	o["schema"] = "accepted and ignored, as in ulogd2"
	o["dbtype"] = "`pgsql`, `mysql` or `sqlite3`"
	return o
}

// Descriptor returns the DBI plugin's descriptor.
func Descriptor() *plugin.Descriptor {
	return plugin.Define(plugin.Def[Config]{
		Name:      "DBI",
		Kind:      plugin.Sink,
		Summary:   "write rows into a PostgreSQL, MariaDB/MySQL or SQLite database chosen by dbtype (ulogd2's libdbi sink)",
		Input:     plugin.DTPacket | plugin.DTFlow,
		Output:    plugin.DTSink,
		Wildcard:  true,
		NewConfig: newConfig,
		Options:   options(),
		Sample:    sample,
		Keys: func(cfg *Config) ([]keys.Spec, []keys.Spec, error) {
			return nil, nil, cfg.check()
		},
		Resources: func(cfg *Config) []string { return cfg.Options.Resources() },
		New:       newSink,
	})
}

func newSink(env *plugin.Env, cfg *Config) (plugin.Instance, error) {
	if err := cfg.checkNames(); err != nil {
		return nil, err
	}
	d, err := newDriver(cfg)
	if err != nil {
		return nil, err
	}
	return mysql.NewInstance(env, "DBI", cfg.Options, sqldb.IDFirst, d), nil
}

// newDriver returns the driver of cfg's dbtype.
func newDriver(cfg *Config) (sqldb.Driver, error) {
	switch cfg.DBType {
	case "mysql":
		return mysql.NewDriver(mysql.Params{Host: cfg.Host, Port: cfg.Port, User: cfg.User, Pass: cfg.Pass, DB: cfg.DB,
			ConnectTimeout: time.Duration(cfg.ConnectTimeout) * time.Second}, cfg.Table, cfg.Procedure, true)
	case "pgsql":
		return pgsqlDriver(cfg)
	}
	return newSQLiteDriver(cfg.SQLitePath(), cfg.Table, cfg.Procedure), nil
}
