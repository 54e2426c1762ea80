package all

import _ "github.com/ulogd-go/ulogd/plugins/output/sqlite3" // SQLITE3
