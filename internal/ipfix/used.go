package ipfix

import "sync/atomic"

// usedSet is the set of template ids used so far, written by the encoder's
// goroutine and read by a sender's (TemplateMessage).
type usedSet struct {
	w [(MaxTemplateID + 1 - FirstTemplateID + 63) / 64]atomic.Uint64
}

func (u *usedSet) add(id uint16) {
	i := id - FirstTemplateID
	w := &u.w[i/64]
	if m := uint64(1) << (i % 64); w.Load()&m == 0 {
		w.Or(m)
	}
}

func (u *usedSet) list() []uint16 {
	var ids []uint16
	for i := range u.w {
		v := u.w[i].Load()
		for j := 0; v != 0; j++ {
			if v&1 != 0 {
				ids = append(ids, uint16(FirstTemplateID+i*64+j))
			}
			v >>= 1
		}
	}
	return ids
}
