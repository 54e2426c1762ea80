package all

import _ "github.com/ulogd-go/ulogd/plugins/filter/ip2bin" // IP2BIN
