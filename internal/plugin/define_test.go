package plugin

import (
	"testing"

	"github.com/ulogd-go/ulogd/internal/keys"
)

type defConf struct {
	N int `ulogd:"n"`
}

type defInst struct {
	Stateless
	cfg *defConf
}

func defDescriptor() *Descriptor {
	return Define(Def[defConf]{
		Name: "X", Kind: Filter,
		NewConfig: func() *defConf { return &defConf{N: 7} },
		Keys: func(c *defConf) ([]keys.Spec, []keys.Spec, error) {
			return nil, make([]keys.Spec, c.N), nil
		},
		Resources: func(c *defConf) []string { return []string{"n:" + string(rune('0'+c.N))} },
		New:       func(_ *Env, c *defConf) (Instance, error) { return &defInst{cfg: c}, nil },
	})
}

// TestDefine: the descriptor's functions hand the plugin its own config
// type, the defaults for a nil config, and an error naming the plugin for
// any other type.
func TestDefine(t *testing.T) {
	d := defDescriptor()
	cfg := d.NewConfig().(*defConf)
	if cfg.N != 7 {
		t.Fatalf("NewConfig: %+v, want the defaults", cfg)
	}
	cfg.N = 3
	inst, err := d.New(&Env{Config: cfg})
	if err != nil || inst.(*defInst).cfg != cfg {
		t.Errorf("New with its config: %v, %v", inst, err)
	}
	inst, err = d.New(&Env{})
	if err != nil || inst.(*defInst).cfg.N != 7 {
		t.Errorf("New without a config: %v, %v; want the defaults", inst, err)
	}
	if _, err := d.New(&Env{Config: 42}); err == nil || err.Error() != "X: unexpected config type int" {
		t.Errorf("New with a wrong type: %v", err)
	}
	if _, out, err := d.Keys(cfg); err != nil || len(out) != 3 {
		t.Errorf("Keys: %d keys, %v; want 3", len(out), err)
	}
	if _, _, err := d.Keys("x"); err == nil {
		t.Error("Keys with a wrong type: no error")
	}
	if r := d.Resources(nil); len(r) != 1 || r[0] != "n:7" {
		t.Errorf("Resources(nil) = %v, want [n:7]", r)
	}
	if r := d.Resources(1.5); r != nil {
		t.Errorf("Resources with a wrong type = %v, want nil", r)
	}
}

// TestDefineNoConfig: a plugin without options has no NewConfig and gets
// a NoConfig, never a nil pointer.
func TestDefineNoConfig(t *testing.T) {
	var got *NoConfig
	d := Define(Def[NoConfig]{
		Name: "Y", Kind: Sink,
		New: func(_ *Env, c *NoConfig) (Instance, error) { got = c; return Stateless{}, nil },
	})
	if d.NewConfig != nil || d.Keys != nil || d.Resources != nil {
		t.Error("nil functions of the Def must stay nil in the Descriptor")
	}
	if _, err := d.New(&Env{}); err != nil || got == nil {
		t.Errorf("New: config %v, %v", got, err)
	}
}
