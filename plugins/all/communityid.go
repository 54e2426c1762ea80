package all

import _ "github.com/ulogd-go/ulogd/plugins/filter/communityid" // COMMUNITYID
