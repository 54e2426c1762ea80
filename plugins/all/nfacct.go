package all

import _ "github.com/ulogd-go/ulogd/plugins/input/nfacct" // NFACCT
