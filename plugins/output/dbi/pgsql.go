package dbi

import (
	"github.com/ulogd-go/ulogd/internal/sqldb"
	"github.com/ulogd-go/ulogd/plugins/output/pgsql"
)

// pgsqlDriver is PGSQL's driver on DBI's options: no schema (DBI ignores
// it), so the table is found in the search path.
func pgsqlDriver(cfg *Config) (sqldb.Driver, error) {
	return pgsql.NewDriver(&pgsql.Config{Options: cfg.Options, DB: cfg.DB, Host: cfg.Host, User: cfg.User,
		Pass: cfg.Pass, Port: cfg.Port}), nil
}
