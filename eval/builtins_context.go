package eval

import (
	"strings"

	"github.com/tvix-go/tvix/nix/storepath"
)

// registerContext adds the builtins that read and change string context.
func registerContext(reg registerFunc) {
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
				as = append(as, MkAttr("path", Bool(true)))
			}
			if i.all {
				as = append(as, MkAttr("allOutputs", Bool(true)))
			}
			if len(i.outs) > 0 {
				as = append(as, MkAttr("outputs", &List{Items: i.outs}))
			}
			out = append(out, MkAttr(p, NewAttrs(as)))
		}
		return NewAttrs(out)
	})
	reg("appendContext", 2, func(ev *Evaluator, a []Value) Value {
		s := ev.ForceString(a[0])
		as := ev.forceAttrs(a[1])
		ctx := append([]string(nil), s.Ctx()...)
		for _, x := range as.All() {
			if !strings.HasPrefix(x.Name(), storepath.StoreDir+"/") {
				ev.Throwf("context key '%s' is not a store path", x.Name())
			}
			inf := ev.forceAttrs(x.Val)
			if v, ok := inf.Get("path"); ok && ev.forceBool(v, ev.curPos) {
				ctx = append(ctx, x.Name())
			}
			if v, ok := inf.Get("allOutputs"); ok && ev.forceBool(v, ev.curPos) {
				if !strings.HasSuffix(x.Name(), ".drv") {
					ev.Throwf("tried to add all-outputs context of %s, which is not a derivation, to a string", x.Name())
				}
				ctx = append(ctx, "="+x.Name())
			}
			if v, ok := inf.Get("outputs"); ok {
				l := ev.ForceList(v)
				if len(l.Items) > 0 && !strings.HasSuffix(x.Name(), ".drv") {
					ev.Throwf("tried to add derivation output context of %s, which is not a derivation, to a string", x.Name())
				}
				for _, o := range l.Items {
					ctx = append(ctx, "!"+ev.str(o)+"!"+x.Name())
				}
			}
		}
		return StrCtx(s.S, NewContext(ctx...))
	})
}
