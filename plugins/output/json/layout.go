package json

import (
	"github.com/ulogd-go/ulogd/internal/keys"
)

// kind says how a value is written.
type kind uint8

const (
	kUint   kind = iota // unsigned integers and BOOL: decimal
	kInt8               // signed integers: sign-extended decimal
	kInt16              //
	kInt32              //
	kInt64              //
	kString             // JSON string; omitted when not valid UTF-8
	kLabel              // raw.label with boolean_label=1: "allowed"/"blocked"
)

// kindOf returns how a key of type t is written, and false for the types
// ulogd2 leaves out (IP addresses, raw data, RAWSTR).
func kindOf(t keys.Type) (kind, bool) {
	switch t {
	case keys.Uint8, keys.Uint16, keys.Uint32, keys.Uint64, keys.Bool:
		return kUint, true
	case keys.Int8:
		return kInt8, true
	case keys.Int16:
		return kInt16, true
	case keys.Int32:
		return kInt32, true
	case keys.Int64:
		return kInt64, true
	case keys.String:
		return kString, true
	}
	return 0, false
}

// cimAlias is the Common Information Model name ulogd2 gives some keys.
func cimAlias(name string) string {
	switch name {
	case "tcp.sport", "udp.sport", "sctp.sport":
		return "src_port"
	case "tcp.dport", "udp.dport", "sctp.dport":
		return "dest_port"
	case "ip.saddr.str", "orig.ip.saddr.str":
		return "src_ip"
	case "ip.daddr.str", "orig.ip.daddr.str":
		return "dest_ip"
	}
	return name
}

// source is one upstream key feeding a field.
type source struct {
	slot keys.Slot
	kind kind
}

// field is one distinct output name.
type field struct {
	key  []byte   // ", ", the quoted name and ": ", e.g. `, "src_ip": `
	srcs []source // every upstream key with this name, in stack order
	seen uint32   // generation of the last record that wrote it
}

// occurrence is one upstream key, in stack order, pointing at its field.
type occurrence struct {
	source
	single bool   // the only key of its field: nothing else writes the name
	field  int32  // index in layout.fields
	key    []byte // the field's key
	// pad is the key zero-padded to keyPad bytes, for keys that fit
	// (padded is true): copied whole, it is a few moves and no memmove.
	pad    [keyPad]byte
	padded bool
}

// keyPad is the size of occurrence.pad. The longest key of the NFCT, NFLOG
// and NFACCT stacks (", " and `"reply.raw.pktcount": `) is 26 bytes.
const keyPad = 32

// room is the free capacity encode wants before writing a field that is
// not a string: a padded key and the longest integer (20 digits and a
// sign), with margin.
const room = keyPad + 24

// slotWord is a run of occurrences whose slots ascend within one validity
// word of the record: occurrence base+k has the k-th lowest slot of mask.
type slotWord struct {
	i    int32  // the index of the validity word
	base int32  // the occurrence of the lowest bit of mask
	mask uint64 // the occurrences' slots in that word
}

// layout is the precomputed shape of a record.
type layout struct {
	head   []byte // `{` or `{"@version": 1` (nothing else goes first)
	tsKey  []byte // `"timestamp": "` or `"@timestamp": "`, nil without time stamp
	dvc    []byte // `"dvc": "Netfilter"`, nil when the device is not valid UTF-8
	sec    keys.Slot
	usec   keys.Slot
	fields []field
	occs   []occurrence
	gen    uint32

	// The bulk walk (validOccs): the occurrences cut into slotWords, in
	// stack order. Nil when an occurrence has an unbound slot.
	words []slotWord
	list  []int32 // validOccs' result, reused

	// The plans of the last shapes seen, the oldest replaced first.
	plans    [numPlans]plan
	nextPlan int
}

// buildLayout turns the upstream keys into the record layout. Names keep
// the position of their first occurrence; ulogd2 (jansson) overwrites the
// value of a name seen again, so a later valid key of the same name wins.
func buildLayout(up []keys.Bound, cfg *Config) layout {
	l := layout{sec: keys.NoSlot, usec: keys.NoSlot}
	l.head = append(l.head, '{')
	if cfg.EventV1 != 0 {
		l.head = append(l.head, `"@version": 1`...)
	}
	ecs := cfg.Layout == "ecs"
	if cfg.Timestamp != 0 {
		if cfg.EventV1 != 0 || ecs {
			l.tsKey = []byte(`"@timestamp": "`)
		} else {
			l.tsKey = []byte(`"timestamp": "`)
		}
	}
	if ecs {
		l.dvc = ecsHead(cfg.Device)
	} else if dvc, ok := appendString([]byte(`"dvc": `), []byte(cfg.Device)); ok {
		l.dvc = dvc
	}
	index := map[string]int32{} // build time only
	for _, u := range up {
		switch {
		case u.Name == "oob.time.sec" && l.sec == keys.NoSlot:
			l.sec = u.Slot
		case u.Name == "oob.time.usec" && l.usec == keys.NoSlot:
			l.usec = u.Slot
		}
		k, ok := kindOf(u.Type)
		if !ok {
			continue
		}
		name := cimAlias(u.Name)
		if ecs {
			if name = ecsName(u.Name); name == "" {
				continue
			}
		}
		if cfg.BooleanLabel != 0 && u.Name == "raw.label" && k != kString {
			name, k = "action", kLabel
			if ecs {
				name = "ulogd.action"
			}
		}
		src := source{slot: u.Slot, kind: k}
		fi, ok := index[name]
		if !ok {
			fi = int32(len(l.fields))
			index[name] = fi
			key, _ := appendString(nil, []byte(name))
			key = append([]byte(", "), key...)
			l.fields = append(l.fields, field{key: append(key, ": "...)})
		}
		f := &l.fields[fi]
		dup := false
		for _, s := range f.srcs {
			dup = dup || s == src
		}
		if dup {
			// The same value again (wildcard duplicates are bound to
			// the nearest provider): nothing new to write.
			continue
		}
		f.srcs = append(f.srcs, src)
		l.occs = append(l.occs, occurrence{source: src, field: fi})
	}
	for i := range l.occs {
		o := &l.occs[i]
		f := &l.fields[o.field]
		o.key = f.key
		o.single = len(f.srcs) == 1
		o.padded = copy(o.pad[:], f.key) == len(f.key)
	}
	l.planWalk()
	return l
}

// planWalk cuts the occurrences into the slotWords of the bulk walk: a new
// one starts where the slot changes word or does not ascend. In the usual
// stacks slots ascend in stack order but for the wildcard duplicates
// (HWHDR's raw.type and oob.protocol are bound to the nearest provider,
// later in the stack), which cost a few more slotWords.
func (l *layout) planWalk() {
	l.list = make([]int32, 0, len(l.occs))
	for _, o := range l.occs {
		if o.slot < 0 {
			return // never valid, but no bit either: check each key
		}
	}
	for i, o := range l.occs {
		wi := int32(o.slot >> 6)
		if n := len(l.words); n == 0 || o.slot <= l.occs[i-1].slot || wi != l.words[n-1].i {
			l.words = append(l.words, slotWord{i: wi, base: int32(i)})
		}
		l.words[len(l.words)-1].mask |= 1 << (uint(o.slot) & 63)
	}
	for i := range l.plans {
		l.plans[i].masks = make([]uint64, 0, len(l.words))
		l.plans[i].ops = make([]op, 0, len(l.occs))
	}
}
