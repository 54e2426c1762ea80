package sqldb

import (
	"errors"
	"strings"
	"testing"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/sinkq"
)

func TestParseProcedure(t *testing.T) {
	for _, tc := range []struct {
		p     string
		style Style
		name  string
	}{
		{"INSERT", Insert, ""},
		{"insert", Insert, ""},
		{" Insert ", Insert, ""},
		{"INSERT INTO ulog2", InsertInto, "INSERT INTO ulog2"},
		{"insert into s.t", InsertInto, "insert into s.t"},
		{"CALL my_proc", Call, "my_proc"},
		{"call x", Call, "x"},
		{"INSERT_PACKET_FULL", Select, "INSERT_PACKET_FULL"},
		{"INSERT_CT", Select, "INSERT_CT"},
		{"INSERTX", Select, "INSERTX"},
	} {
		s, n := ParseProcedure(tc.p)
		if s != tc.style || n != tc.name {
			t.Errorf("ParseProcedure(%q) = %v %q, want %v %q", tc.p, s, n, tc.style, tc.name)
		}
	}
}

func TestStatement(t *testing.T) {
	cols := []string{"a_b", "c"}
	vals := []byte("1,'x'")
	for _, tc := range []struct {
		proc, schema, want string
		multi              bool
	}{
		{"INSERT", "", "insert into t (a_b,c) values (1,'x')", true},
		{"INSERT", "public", "insert into public.t (a_b,c) values (1,'x')", true},
		{"INSERT INTO other", "public", "INSERT INTO other (a_b,c) values (1,'x')", true},
		{"CALL p", "public", "CALL p(1,'x')", false},
		{"INSERT_CT", "public", "SELECT INSERT_CT(1,'x')", false},
	} {
		st := NewStatement(tc.proc, tc.schema, "t", cols)
		if got := string(st.AppendOne(nil, vals)); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.proc, got, tc.want)
		}
		if st.MultiRow() != tc.multi {
			t.Errorf("%q: MultiRow %v", tc.proc, st.MultiRow())
		}
	}
}

func up(names ...string) []keys.Bound {
	var b []keys.Bound
	for i, n := range names {
		b = append(b, keys.Bound{Spec: keys.Spec{Name: n, Type: keys.Uint32}, Slot: keys.Slot(i), Instance: "src"})
	}
	return b
}

func TestBind(t *testing.T) {
	u := up("oob.time.sec", "ip.saddr.str", "ip.saddr.str", "orig.raw.pktlen")
	b, err := Bind("ulog", []string{"_id", "ip_saddr_str", "orig_raw_pktlen"}, u, IDUnderscore, "f:3")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(b.Written(), ","); got != "ip_saddr_str,orig_raw_pktlen" {
		t.Errorf("written %q", got)
	}
	if got := b.Indexes(); len(got) != 2 || got[0] != 1 || got[1] != 3 {
		t.Errorf("indexes %v", got)
	}
	// PGSQL: a first column without '_' is written (and needs a key).
	_, err = Bind("t", []string{"id", "ip_saddr_str"}, u, IDUnderscore, "f:3")
	var nk *ErrNoKey
	if !errors.As(err, &nk) || nk.Column != "id" || !strings.Contains(err.Error(), "f:3") {
		t.Errorf("want ErrNoKey for id naming f:3, got %v", err)
	}
	// MYSQL: the first column is always the id.
	if _, err := Bind("t", []string{"id", "ip_saddr_str"}, u, IDFirst, ""); err != nil {
		t.Error(err)
	}
	// SQLITE3: no id column at all.
	_, err = Bind("t", []string{"_id", "ip_saddr_str"}, u, NoID, "f:9")
	if !errors.As(err, &nk) || nk.Key != ".id" {
		t.Errorf("want ErrNoKey .id, got %v", err)
	}
	_, err = Bind("t", []string{"ip_saddr_str", "no_such"}, u, NoID, "f:9")
	if err == nil || err.Error() != "column `no_such' of table `t': cannot find key `no.such' in stack (f:9)" {
		t.Errorf("got %v", err)
	}
	if _, err := Bind("t", nil, u, NoID, ""); err == nil {
		t.Error("no columns accepted")
	}
	if _, err := Bind("t", []string{"_id"}, u, IDFirst, ""); err == nil {
		t.Error("only an id column accepted")
	}
}

var pgDialect = &Dialect{AppendString: AppendStdString}

func TestRender(t *testing.T) {
	for _, tc := range []struct {
		v    Value
		want string
	}{
		{Value{Type: keys.Uint32}, "NULL"},
		{Value{Valid: true, Type: keys.Uint32, N: 3000000000}, "3000000000"},
		{Value{Valid: true, Type: keys.Uint64, N: 1<<64 - 1}, "18446744073709551615"},
		{Value{Valid: true, Type: keys.Int8, N: 0xff}, "-1"},
		{Value{Valid: true, Type: keys.Int32, N: 0x80000000}, "-2147483648"},
		{Value{Valid: true, Type: keys.Int64, N: 1<<64 - 2}, "-2"},
		{Value{Valid: true, Type: keys.Bool, N: 1}, "'1'"},
		{Value{Valid: true, Type: keys.Bool, N: 0}, "'0'"},
		{Value{Valid: true, Type: keys.IPAddr, B: []byte{10, 99, 0, 1}}, "16802570"},
		{Value{Valid: true, Type: keys.IPAddr, B: make([]byte, 16)}, "NULL"},
		{Value{Valid: true, Type: keys.String, B: []byte(`it's \ ok`)}, `'it''s \ ok'`},
		{Value{Valid: true, Type: keys.RawStr, B: []byte("0x0a630001")}, "0x0a630001"},
		{Value{Valid: true, Type: keys.RawStr, B: []byte("1);drop")}, "'1);drop'"},
		{Value{Valid: true, Type: keys.Raw, B: []byte{1, 2}}, "NULL"},
	} {
		if got := string(tc.v.AppendSQL(nil, pgDialect)); got != tc.want {
			t.Errorf("%+v: got %s, want %s", tc.v, got, tc.want)
		}
	}
	my := &Dialect{AppendString: AppendBackslashString, AppendIP6: AppendHexIP6}
	v6 := Value{Valid: true, Type: keys.IPAddr, B: []byte{0xfd, 0x67, 15: 1}}
	if got := string(v6.AppendSQL(nil, my)); got != "0xfd670000000000000000000000000001" {
		t.Errorf("ipv6 hex: %s", got)
	}
	s := Value{Valid: true, Type: keys.String, B: []byte("a'b\\c\x00\n\"\x1a")}
	if got := string(s.AppendSQL(nil, my)); got != `'a\'b\\c\0\n\"\Z'` {
		t.Errorf("mysql string: %s", got)
	}
	row := Row{Vals: []Value{{Valid: true, Type: keys.Uint8, N: 6}, {}, {Valid: true, Type: keys.String, B: []byte("x")}}}
	if got := string(row.AppendSQL(nil, pgDialect)); got != "6,NULL,'x'" {
		t.Errorf("row: %s", got)
	}
}

// FuzzStdString checks that a quoted string is one literal: no quote ends
// it early, whatever the text.
func FuzzStdString(f *testing.F) {
	f.Add([]byte("it's"))
	f.Add([]byte("''';--"))
	f.Fuzz(func(t *testing.T, s []byte) {
		q := AppendStdString(nil, s)
		if q[0] != '\'' || q[len(q)-1] != '\'' {
			t.Fatalf("not quoted: %q", q)
		}
		in := string(q[1 : len(q)-1])
		if strings.ReplaceAll(in, "''", "") != strings.ReplaceAll(string(s), "'", "") {
			t.Fatalf("lone quote in %q", q)
		}
		if strings.ReplaceAll(in, "''", "'") != string(s) {
			t.Fatalf("%q does not unquote to %q", q, s)
		}
	})
}

func FuzzEncodeDecode(f *testing.F) {
	f.Add(uint64(5), []byte("abc"), true, false)
	f.Fuzz(func(t *testing.T, n uint64, b []byte, v1, v2 bool) {
		types := []keys.Type{keys.Uint64, keys.String, keys.IPAddr}
		r := keys.NewRecord(types)
		if v1 {
			r.SetUint(0, n)
		}
		r.SetBytes(1, b)
		if v2 {
			r.SetBytes(2, b)
		}
		up := []keys.Bound{{Spec: keys.Spec{Name: "a", Type: keys.Uint64}, Slot: 0},
			{Spec: keys.Spec{Name: "b", Type: keys.String}, Slot: 1},
			{Spec: keys.Spec{Name: "c", Type: keys.IPAddr}, Slot: 2}}
		l := FullLayout(up)
		enc := l.Encode(nil, r)
		var row Row
		if err := l.Decode(enc, &row); err != nil {
			t.Fatal(err)
		}
		if row.Vals[0].Valid != v1 || v1 && row.Vals[0].N != n {
			t.Fatalf("int: %+v", row.Vals[0])
		}
		if !row.Vals[1].Valid || string(row.Vals[1].B) != string(b) {
			t.Fatalf("bytes: %+v", row.Vals[1])
		}
		if row.Vals[2].Valid != v2 {
			t.Fatalf("validity: %+v", row.Vals[2])
		}
		// Truncated rows never decode.
		for i := range enc {
			if l.Decode(enc[:i], &row) == nil {
				t.Fatalf("truncated row (%d of %d bytes) decoded", i, len(enc))
			}
		}
	})
}

func TestOptions(t *testing.T) {
	o := DefaultOptions()
	o.Table, o.Procedure = "t", "INSERT"
	w, err := o.Check()
	if err != nil || len(w) != 0 {
		t.Fatal(w, err)
	}
	if q := o.Queue(); q.QueueBytes != DefaultMemcap || q.QueueRecords != DefaultMemcap/64 || q.Policy() != sinkq.Drop {
		t.Errorf("defaults %+v", q)
	}
	o.BacklogOneshot = 1
	o.RingBufferSize = 100
	o.BacklogMemcap = 1000
	w, err = o.Check()
	if err != nil || len(w) != 1 || o.BacklogOneshot != 3 {
		t.Errorf("oneshot: %v %v %d", w, err, o.BacklogOneshot)
	}
	if q := o.Queue(); q.QueueRecords != 100 || q.QueueBytes != 1000 {
		t.Errorf("bounds %+v", q)
	}
	o.Reconnect = -1
	if _, err := o.Check(); err == nil || !strings.Contains(err.Error(), "reconnect") {
		t.Errorf("negative reconnect: %v", err)
	}
	o = DefaultOptions()
	o.Procedure = "INSERT"
	if err := o.CheckNames(); err == nil || !strings.Contains(err.Error(), "table") {
		t.Errorf("empty table: %v", err)
	}
}

// TestEncodeAllocs: copying a record into the queue's encoding buffer
// allocates nothing once the buffer has grown (Interp's per-event work).
func TestEncodeAllocs(t *testing.T) {
	up := []keys.Bound{{Spec: keys.Spec{Name: "a", Type: keys.Uint32}, Slot: 0},
		{Spec: keys.Spec{Name: "b", Type: keys.String}, Slot: 1},
		{Spec: keys.Spec{Name: "c", Type: keys.IPAddr}, Slot: 2}}
	r := keys.NewRecord([]keys.Type{keys.Uint32, keys.String, keys.IPAddr})
	r.SetUint(0, 7)
	r.SetString(1, "veth0")
	r.SetBytes(2, []byte{10, 99, 0, 1})
	l := FullLayout(up)
	buf := l.Encode(nil, r)
	if n := testing.AllocsPerRun(100, func() { buf = l.Encode(buf[:0], r) }); n != 0 {
		t.Errorf("%v allocations per record", n)
	}
}
