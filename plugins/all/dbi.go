package all

import _ "github.com/ulogd-go/ulogd/plugins/output/dbi" // DBI
