package all

import _ "github.com/ulogd-go/ulogd/plugins/filter/ip2hbin" // IP2HBIN
