package ctnl

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Classic BPF ancillary loads (linux/filter.h). "ld A = [SKF_AD_OFF+x]"
// calls a kernel helper instead of loading packet bytes.
const (
	skfAdOff        = 0xfffff000 // SKF_AD_OFF (-0x1000)
	skfAdNlattr     = 12         // SKF_AD_NLATTR: A = offset of attr type X in the attrs from offset A, 0 if none
	skfAdNlattrNest = 16         // SKF_AD_NLATTR_NEST: A = offset of attr type X nested in the attr at offset A, 0 if none
	bpfMaxInsns     = 4096       // BPF_MAXINSNS
)

// asm is a tiny classic-BPF assembler with symbolic jump targets.
type asm struct {
	ins    []asmInsn
	labels map[string]int
	nlabel int
}

type asmInsn struct {
	f      unix.SockFilter
	jt, jf string // conditional targets; "" = fall through
	ja     string // unconditional target
}

func newAsm() *asm { return &asm{labels: make(map[string]int)} }

// newLabel returns a fresh label name with the given prefix.
func (a *asm) newLabel(prefix string) string {
	a.nlabel++
	return fmt.Sprintf("%s%d", prefix, a.nlabel)
}

// mark binds label to the next instruction.
func (a *asm) mark(label string) { a.labels[label] = len(a.ins) }

func (a *asm) stmt(code uint16, k uint32) {
	a.ins = append(a.ins, asmInsn{f: unix.SockFilter{Code: code, K: k}})
}

// jeq emits "jeq #k, jt, jf"; an empty label falls through.
func (a *asm) jeq(k uint32, jt, jf string) {
	a.ins = append(a.ins, asmInsn{f: unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: k}, jt: jt, jf: jf})
}

// jmp emits an unconditional jump (32-bit offset, any distance).
func (a *asm) jmp(label string) {
	a.ins = append(a.ins, asmInsn{f: unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JA}, ja: label})
}

// The instructions used by the filter, named as in bpf_asm.
func (a *asm) ldb(off uint32)  { a.stmt(unix.BPF_LD|unix.BPF_B|unix.BPF_ABS, off) }
func (a *asm) ldImm(k uint32)  { a.stmt(unix.BPF_LD|unix.BPF_IMM, k) }
func (a *asm) ldxImm(k uint32) { a.stmt(unix.BPF_LDX|unix.BPF_IMM, k) }
func (a *asm) ldMem(m uint32)  { a.stmt(unix.BPF_LD|unix.BPF_MEM, m) }
func (a *asm) st(m uint32)     { a.stmt(unix.BPF_ST, m) }
func (a *asm) ldAnc(ad uint32) { a.stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, skfAdOff+ad) }
func (a *asm) ldwInd(k uint32) { a.stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_IND, k) }
func (a *asm) ldbInd(k uint32) { a.stmt(unix.BPF_LD|unix.BPF_B|unix.BPF_IND, k) }
func (a *asm) and(k uint32)    { a.stmt(unix.BPF_ALU|unix.BPF_AND|unix.BPF_K, k) }
func (a *asm) tax()            { a.stmt(unix.BPF_MISC|unix.BPF_TAX, 0) }
func (a *asm) ret(k uint32)    { a.stmt(unix.BPF_RET|unix.BPF_K, k) }

// assemble resolves the labels.
func (a *asm) assemble() ([]unix.SockFilter, error) {
	if len(a.ins) > bpfMaxInsns {
		return nil, fmt.Errorf("%w: program needs %d instructions, the kernel allows %d", ErrFilter, len(a.ins), bpfMaxInsns)
	}
	out := make([]unix.SockFilter, len(a.ins))
	for i, in := range a.ins {
		f := in.f
		rel := func(label string) (int, error) {
			if label == "" {
				return 0, nil
			}
			to, ok := a.labels[label]
			if !ok {
				return 0, fmt.Errorf("ctnl: bpf: undefined label %q", label)
			}
			d := to - i - 1
			if d < 0 {
				return 0, fmt.Errorf("ctnl: bpf: backward jump to %q", label)
			}
			return d, nil
		}
		if in.ja != "" {
			d, err := rel(in.ja)
			if err != nil {
				return nil, err
			}
			f.K = uint32(d)
		} else if f.Code&0x07 == unix.BPF_JMP {
			dt, err := rel(in.jt)
			if err != nil {
				return nil, err
			}
			df, err := rel(in.jf)
			if err != nil {
				return nil, err
			}
			if dt > 255 || df > 255 {
				return nil, fmt.Errorf("ctnl: bpf: conditional jump too far at %d", i)
			}
			f.Jt, f.Jf = uint8(dt), uint8(df)
		}
		out[i] = f
	}
	return out, nil
}
