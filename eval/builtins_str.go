package eval

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"hash"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/tvix-go/tvix/eval/syntax"
)

func newSource(name, text string) *syntax.Source { return syntax.NewSource(name, []byte(text)) }

var regexCache sync.Map // string -> *regexp.Regexp or error

func (ev *Evaluator) regex(re string, anchored bool) *regexp.Regexp {
	key := re
	if anchored {
		key = "^" + re
	}
	if r, ok := regexCache.Load(key); ok {
		if rx, ok := r.(*regexp.Regexp); ok {
			return rx
		}
		ev.Throwf("invalid regular expression '%s'", re)
	}
	src := re
	if anchored {
		src = "^(?:" + re + ")$"
	}
	rx, err := regexp.Compile("(?s)" + src)
	if err == nil {
		rx.Longest()
	}
	if err != nil {
		regexCache.Store(key, err)
		ev.Throwf("invalid regular expression '%s'", re)
	}
	regexCache.Store(key, rx)
	return rx
}

func hasherFor(name string) hash.Hash {
	switch name {
	case "md5":
		return md5.New()
	case "sha1":
		return sha1.New()
	case "sha256":
		return sha256.New()
	case "sha512":
		return sha512.New()
	}
	return nil
}

func sha256Sum(b []byte) []byte { h := sha256.Sum256(b); return h[:] }

func registerStrings(reg func(string, int, PrimOpFn)) {
	reg("toString", 1, func(ev *Evaluator, a []Value) Value { return ev.CoerceToStringMore(a[0], false) })
	reg("stringLength", 1, func(ev *Evaluator, a []Value) Value {
		return Int(len(ev.coerceToString(a[0], ev.curPos, false, true).S))
	})
	reg("substring", 3, func(ev *Evaluator, a []Value) Value {
		start := ev.intArg(a[0])
		n := ev.intArg(a[1])
		s := ev.coerceToString(a[2], ev.curPos, false, true)
		if start < 0 {
			ev.Throwf("negative start position in 'substring'")
		}
		if start >= int64(len(s.S)) {
			return StrCtx("", s.Ctx())
		}
		end := int64(len(s.S))
		if n >= 0 && start+n < end {
			end = start + n
		}
		return StrCtx(s.S[start:end], s.Ctx())
	})
	reg("concatStringsSep", 2, func(ev *Evaluator, a []Value) Value {
		sep := ev.ForceString(a[0])
		l := ev.ForceList(a[1])
		var b strings.Builder
		ctx := sep.Ctx()
		for i := range l.Items {
			if i > 0 {
				b.WriteString(sep.S)
			}
			s := ev.coerceToString(ev.forceItem(l, i), ev.curPos, false, true)
			b.WriteString(s.S)
			ctx = MergeContext(ctx, s.Ctx())
		}
		return StrCtx(b.String(), ctx)
	})
	reg("replaceStrings", 3, func(ev *Evaluator, a []Value) Value {
		from := ev.ForceList(a[0])
		to := ev.ForceList(a[1])
		if len(from.Items) != len(to.Items) {
			ev.Throwf("'from' and 'to' arguments to 'replaceStrings' have different lengths")
		}
		s := ev.coerceToString(a[2], ev.curPos, false, true)
		froms := make([]string, len(from.Items))
		for i, f := range from.Items {
			froms[i] = ev.str(f)
		}
		tos := make([]*String, len(to.Items))
		var b []byte
		ctx := s.Ctx()
		str := s.S
		// bytes that can start a match; runs of other bytes are copied
		// at once
		var starts [256]bool
		anyEmpty := false
		for _, f := range froms {
			if f == "" {
				anyEmpty = true
			} else {
				starts[f[0]] = true
			}
		}
		b = make([]byte, 0, len(str))
		for p := 0; p <= len(str); {
			if !anyEmpty {
				q := p
				for q < len(str) && !starts[str[q]] {
					q++
				}
				b = append(b, str[p:q]...)
				p = q
				if p == len(str) {
					break
				}
			}
			found := false
			for i, f := range froms {
				if strings.HasPrefix(str[p:], f) {
					found = true
					if tos[i] == nil {
						tos[i] = ev.coerceToString(to.Items[i], ev.curPos, false, true)
						ctx = MergeContext(ctx, tos[i].Ctx())
					}
					b = append(b, tos[i].S...)
					if f == "" {
						if p < len(str) {
							b = append(b, str[p])
						}
						p++
					} else {
						p += len(f)
					}
					break
				}
			}
			if !found {
				if p < len(str) {
					b = append(b, str[p])
				}
				p++
			}
		}
		return StrCtx(string(b), ctx)
	})
	reg("match", 2, func(ev *Evaluator, a []Value) Value {
		re := ev.str(a[0])
		s := ev.ForceString(a[1])
		rx := ev.regex(re, true)
		m := rx.FindStringSubmatchIndex(s.S)
		if m == nil {
			return Null{}
		}
		out := make([]Value, 0, len(m)/2-1)
		for i := 2; i < len(m); i += 2 {
			if m[i] < 0 {
				out = append(out, Null{})
			} else {
				out = append(out, Str(s.S[m[i]:m[i+1]]))
			}
		}
		return &List{Items: out}
	})
	reg("split", 2, func(ev *Evaluator, a []Value) Value {
		re := ev.str(a[0])
		s := ev.ForceString(a[1])
		if isLiteralRegex(re) && re != "" {
			// no metacharacters: plain substring search
			parts := strings.Split(s.S, re)
			out := make([]Value, 0, 2*len(parts)-1)
			empty := &List{}
			for i, p := range parts {
				if i > 0 {
					out = append(out, empty)
				}
				out = append(out, Str(p))
			}
			return &List{Items: out}
		}
		rx := ev.regex(re, false)
		ms := rx.FindAllStringSubmatchIndex(s.S, -1)
		out := make([]Value, 0, 2*len(ms)+1)
		prev := 0
		for _, m := range ms {
			out = append(out, Str(s.S[prev:m[0]]))
			groups := make([]Value, 0, len(m)/2-1)
			for i := 2; i < len(m); i += 2 {
				if m[i] < 0 {
					groups = append(groups, Null{})
				} else {
					groups = append(groups, Str(s.S[m[i]:m[i+1]]))
				}
			}
			out = append(out, &List{Items: groups})
			prev = m[1]
		}
		out = append(out, Str(s.S[prev:]))
		return &List{Items: out}
	})
	reg("hashString", 2, func(ev *Evaluator, a []Value) Value {
		t := ev.str(a[0])
		h := hasherFor(t)
		if h == nil {
			ev.Throwf("unknown hash algorithm '%s'", t)
		}
		h.Write([]byte(ev.str(a[1])))
		return Str(hex.EncodeToString(h.Sum(nil)))
	})
	reg("hashFile", 2, func(ev *Evaluator, a []Value) Value {
		t := ev.str(a[0])
		h := hasherFor(t)
		if h == nil {
			ev.Throwf("unknown hash algorithm '%s'", t)
		}
		p := ev.coerceToPath(a[1])
		b, err := ev.opts.IO.ReadFile(p)
		if err != nil {
			ev.Throwf("opening file '%s': %s", p, ioErrText(err))
		}
		h.Write(b)
		return Str(hex.EncodeToString(h.Sum(nil)))
	})
	reg("compareVersions", 2, func(ev *Evaluator, a []Value) Value {
		return Int(CompareVersions(ev.str(a[0]), ev.str(a[1])))
	})
	reg("splitVersion", 1, func(ev *Evaluator, a []Value) Value {
		s := ev.str(a[0])
		var out []Value
		p := 0
		for p < len(s) {
			c := nextComponent(s, &p)
			if c == "" {
				break
			}
			out = append(out, Str(c))
		}
		return &List{Items: out}
	})
	reg("parseDrvName", 1, func(ev *Evaluator, a []Value) Value {
		s := ev.str(a[0])
		name, version := s, ""
		for i := 0; i < len(s); i++ {
			if s[i] == '-' && i+1 < len(s) && !isAlpha(s[i+1]) {
				name, version = s[:i], s[i+1:]
				break
			}
		}
		return NewAttrs([]Attr{{Name: "name", Val: Str(name)}, {Name: "version", Val: Str(version)}})
	})

	// string context
	reg("hasContext", 1, func(ev *Evaluator, a []Value) Value { return Bool(len(ev.ForceString(a[0]).Ctx()) > 0) })
	reg("unsafeDiscardStringContext", 1, func(ev *Evaluator, a []Value) Value {
		s := ev.coerceToString(a[0], ev.curPos, false, true)
		if len(s.Ctx()) == 0 {
			return s
		}
		return Str(s.S)
	})
	reg("unsafeDiscardOutputDependency", 1, func(ev *Evaluator, a []Value) Value {
		s := ev.coerceToString(a[0], ev.curPos, false, true)
		var ctx []string
		for _, c := range s.Ctx() {
			if strings.HasPrefix(c, "=") {
				ctx = append(ctx, c[1:])
			} else {
				ctx = append(ctx, c)
			}
		}
		return StrCtx(s.S, NewContext(ctx...))
	})
	reg("getContext", 1, func(ev *Evaluator, a []Value) Value {
		s := ev.ForceString(a[0])
		type info struct {
			path, all bool
			outs      []Value
		}
		m := map[string]*info{}
		get := func(p string) *info {
			if m[p] == nil {
				m[p] = &info{}
			}
			return m[p]
		}
		for _, e := range s.Ctx().Elems() {
			switch e.Kind {
			case CtxPlain:
				get(e.Path).path = true
			case CtxAllOutputs:
				get(e.Path).all = true
			case CtxOutput:
				i := get(e.Path)
				i.outs = append(i.outs, Str(e.Output))
			}
		}
		var out []Attr
		for p, i := range m {
			var as []Attr
			if i.path {
				as = append(as, Attr{Name: "path", Val: Bool(true)})
			}
			if i.all {
				as = append(as, Attr{Name: "allOutputs", Val: Bool(true)})
			}
			if len(i.outs) > 0 {
				as = append(as, Attr{Name: "outputs", Val: &List{Items: i.outs}})
			}
			out = append(out, Attr{Name: p, Val: NewAttrs(as)})
		}
		return NewAttrs(out)
	})
	reg("appendContext", 2, func(ev *Evaluator, a []Value) Value {
		s := ev.ForceString(a[0])
		as := ev.forceAttrs(a[1])
		ctx := append([]string(nil), s.Ctx()...)
		for _, x := range as.All() {
			if !strings.HasPrefix(x.Name, ev.opts.StoreDir+"/") {
				ev.Throwf("context key '%s' is not a store path", x.Name)
			}
			inf := ev.forceAttrs(x.Val)
			if v, ok := inf.Get("path"); ok && ev.forceBool(v, ev.curPos) {
				ctx = append(ctx, x.Name)
			}
			if v, ok := inf.Get("allOutputs"); ok && ev.forceBool(v, ev.curPos) {
				if !strings.HasSuffix(x.Name, ".drv") {
					ev.Throwf("tried to add all-outputs context of %s, which is not a derivation, to a string", x.Name)
				}
				ctx = append(ctx, "="+x.Name)
			}
			if v, ok := inf.Get("outputs"); ok {
				l := ev.ForceList(v)
				if len(l.Items) > 0 && !strings.HasSuffix(x.Name, ".drv") {
					ev.Throwf("tried to add derivation output context of %s, which is not a derivation, to a string", x.Name)
				}
				for _, o := range l.Items {
					ctx = append(ctx, "!"+ev.str(o)+"!"+x.Name)
				}
			}
		}
		return StrCtx(s.S, NewContext(ctx...))
	})
}

func isAlpha(c byte) bool  { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigitB(c byte) bool { return c >= '0' && c <= '9' }

func nextComponent(s string, p *int) string {
	for *p < len(s) && (s[*p] == '.' || s[*p] == '-') {
		*p++
	}
	if *p >= len(s) {
		return ""
	}
	start := *p
	if isDigitB(s[*p]) {
		for *p < len(s) && isDigitB(s[*p]) {
			*p++
		}
	} else {
		for *p < len(s) && !isDigitB(s[*p]) && s[*p] != '.' && s[*p] != '-' {
			*p++
		}
	}
	return s[start:*p]
}

func componentsLT(c1, c2 string) bool {
	n1, e1 := strconv.Atoi(c1)
	n2, e2 := strconv.Atoi(c2)
	switch {
	case e1 == nil && e2 == nil:
		return n1 < n2
	case c1 == "" && e2 == nil:
		return true
	case c1 == "pre" && c2 != "pre":
		return true
	case c2 == "pre":
		return false
	case e2 == nil:
		return true
	case e1 == nil:
		return false
	}
	return c1 < c2
}

// CompareVersions is builtins.compareVersions.
func CompareVersions(v1, v2 string) int {
	p1, p2 := 0, 0
	for p1 < len(v1) || p2 < len(v2) {
		c1 := nextComponent(v1, &p1)
		c2 := nextComponent(v2, &p2)
		if componentsLT(c1, c2) {
			return -1
		}
		if componentsLT(c2, c1) {
			return 1
		}
	}
	return 0
}

func isLiteralRegex(re string) bool {
	return !strings.ContainsAny(re, `\.+*?()|[]{}^$`)
}
