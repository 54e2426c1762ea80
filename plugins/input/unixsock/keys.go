package unixsock

import (
	"slices"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/keys/pktkeys"
)

// Output key indexes, in ulogd2's --info order: the packet keys NFLOG
// declares (package pktkeys, with the interfaces as names), then NuFW's.
// Most of the NFLOG-like keys are declared for compatibility and never
// set: NuFW sends no MAC header, mark, hook, sequence numbers or uid/gid.
const (
	kUserName = pktkeys.N + iota
	kUserID
	kOSName
	kOSRel
	kOSVers
	kAppName
	numKeys
)

// outputKeys are the output keys, indexed as above.
var outputKeys = pktkeys.Table(pktkeys.IfNameIn, pktkeys.IfNameOut,
	keys.Spec{Name: "nufw.user.name", Type: keys.String},
	keys.Spec{Name: "nufw.user.id", Type: keys.Uint32},
	keys.Spec{Name: "nufw.os.name", Type: keys.String},
	keys.Spec{Name: "nufw.os.rel", Type: keys.String},
	keys.Spec{Name: "nufw.os.vers", Type: keys.String},
	keys.Spec{Name: "nufw.app.name", Type: keys.String},
)

// OutputKeys returns the UNIXSOCK output keys in declaration order.
func OutputKeys() []keys.Spec { return slices.Clone(outputKeys) }

// slots maps output key indexes to record slots.
type slots [numKeys]keys.Slot
