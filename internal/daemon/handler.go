package daemon

import (
	"context"
	"log/slog"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ulogd-go/ulogd/internal/logging"
)

// handler is the slog.Handler behind Log.Logger.
type handler struct {
	log    *Log
	prefix string // group prefix for attributes added later, "g1.g2."
	attrs  []byte // preformatted " key=value" pairs from WithAttrs
}

func (h *handler) Enabled(_ context.Context, lvl slog.Level) bool {
	return int64(lvl) >= h.log.level.Load()
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	n := *h
	n.attrs = append([]byte(nil), h.attrs...)
	for _, a := range as {
		n.attrs = appendAttr(n.attrs, h.prefix, a)
	}
	return &n
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	n := *h
	n.prefix = h.prefix + name + "."
	return &n
}

func (h *handler) Handle(_ context.Context, r slog.Record) error {
	rec := record{ulvl: logging.ULevel(r.Level), where: "?:0"}
	switch {
	case h.log.now != nil:
		rec.t = h.log.now()
	case !r.Time.IsZero():
		rec.t = r.Time
	default:
		rec.t = time.Now()
	}
	if r.PC != 0 {
		f, _ := runtime.CallersFrames([]uintptr{r.PC}).Next()
		if f.File != "" {
			rec.where = filepath.Base(f.File) + ":" + strconv.Itoa(f.Line)
		}
	}
	// ulogd messages carried their own newline; ported texts may too.
	msg := strings.TrimSuffix(r.Message, "\n")
	text := make([]byte, 0, len(msg)+len(h.attrs)+16*r.NumAttrs())
	text = append(text, msg...)
	text = append(text, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		text = appendAttr(text, h.prefix, a)
		return true
	})
	rec.text = text
	h.log.emit(&rec)
	return nil
}

// appendAttr appends " key=value" (groups flattened to "g.key=value").
func appendAttr(b []byte, prefix string, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return b
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p = prefix + a.Key + "."
		}
		for _, g := range a.Value.Group() {
			b = appendAttr(b, p, g)
		}
		return b
	}
	b = append(b, ' ')
	b = appendMaybeQuoted(b, prefix+a.Key)
	b = append(b, '=')
	var s string
	switch a.Value.Kind() {
	case slog.KindTime:
		s = a.Value.Time().Format(time.RFC3339Nano)
	default:
		s = a.Value.String()
	}
	return appendMaybeQuoted(b, s)
}

// appendMaybeQuoted appends s, quoted Go-style when it is empty or contains
// a space, a quote, '=' or a non-printable character.
func appendMaybeQuoted(b []byte, s string) []byte {
	if s == "" {
		return append(b, `""`...)
	}
	for _, c := range s {
		if c == '"' || c == '=' || c == utf8.RuneError || unicode.IsSpace(c) || !unicode.IsPrint(c) {
			return strconv.AppendQuote(b, s)
		}
	}
	return append(b, s...)
}
